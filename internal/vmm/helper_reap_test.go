package vmm

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// A helper whose pid file was never written is reaped by its marker, but
// only its own machine's: one of a machine of the same ID in another data
// root (another daemon on the host) is left running; one from before
// markers named the directory is reaped by the ID.
func TestReapHelpersByMarker(t *testing.T) {
	id := "reaptest" + strconv.Itoa(os.Getpid())
	mine := Spec{ID: id, Dir: filepath.Join(t.TempDir(), "machines", id)}
	other := Spec{ID: id, Dir: filepath.Join(t.TempDir(), "machines", id)}
	start := func(argv0 string) *exec.Cmd {
		cmd := &exec.Cmd{Path: "/bin/sleep", Args: []string{argv0, "60"}}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
		return cmd
	}
	own := start(HelperMarker(mine, "virtiofsd-a"))
	legacy := start(mine.Marker() + "/virtiofsd-b")
	foreign := start(HelperMarker(other, "virtiofsd-a"))
	if n := ReapHelpers(context.Background(), mine); n != 2 {
		t.Errorf("reaped %d helpers, want 2 (its own and the legacy one)", n)
	}
	gone := func(c *exec.Cmd) bool {
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if _, err := StartTime(c.Process.Pid); err != nil {
				return true
			}
		}
		return false
	}
	if !gone(own) || !gone(legacy) {
		t.Error("the machine's own helpers still run")
	}
	if _, err := StartTime(foreign.Process.Pid); err != nil {
		t.Error("the other root's helper of the same machine ID was killed")
	}
}
