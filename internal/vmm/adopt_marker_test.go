package vmm

import (
	"errors"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// A VMM whose daemon died before writing its pid file is found by its
// marker and the machine directory in its command line, and only then.
func TestAdoptByMarker(t *testing.T) {
	dir := t.TempDir()
	marker := "ferry-markertest" + filepath.Base(dir)
	cmd := exec.Command("sh", "-c", "sleep 30; true", marker, filepath.Join(dir, "console.log"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	if _, err := AdoptByMarker(marker, t.TempDir(), filepath.Join(dir, "other.pid")); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("a VMM of another directory must not match: %v", err)
	}
	if _, err := AdoptByMarker("ferry-nosuch", dir, filepath.Join(dir, "none.pid")); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("unknown marker: %v", err)
	}
	pidfile := filepath.Join(dir, "vmm.pid")
	p, err := AdoptByMarker(marker, dir, pidfile)
	if err != nil {
		t.Fatal(err)
	}
	if p.Pid != cmd.Process.Pid {
		t.Fatalf("adopted pid %d, want %d", p.Pid, cmd.Process.Pid)
	}
	// The pid file it wrote lets a later daemon adopt it the usual way.
	again, err := Adopt(pidfile)
	if err != nil || again.Pid != cmd.Process.Pid {
		t.Fatalf("Adopt after AdoptByMarker: %v", err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.Done()
}
