package volume

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// TestKilledChild is the child of TestKilled: it opens the store in
// $FERRY_KILL_ROOT, runs $FERRY_KILL_OP and SIGKILLs itself at step
// $FERRY_KILL_STEP.
func TestKilledChild(t *testing.T) {
	root, op, step := os.Getenv("FERRY_KILL_ROOT"), os.Getenv("FERRY_KILL_OP"), os.Getenv("FERRY_KILL_STEP")
	prereq.OptIn(t, "FERRY_KILL_ROOT", "the child process of TestKilled (TestKilled sets it)")
	e := newEnv(t, root)
	e.s.hook = func(s string) {
		if s == step {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
	var err error
	switch op {
	case "create":
		_, err = e.s.Create(ctx, CreateRequest{App: "a", Name: "new", Size: 64 << 20})
	case "extend":
		_, _, err = e.s.Extend(ctx, "a", "old", 96<<20)
	case "attach":
		_, err = e.s.Attach(ctx, "a", "old", "m1", false)
	case "remove":
		err = e.s.Remove(ctx, "a", "old")
	case "snapshot":
		_, err = e.s.CreateSnapshot(ctx, "a", "old")
	}
	t.Fatalf("%s should have been killed at %s; it ended with %v", op, step, err)
}

// TestKilled: a daemon SIGKILLed at any step of creating, extending,
// attaching, removing or snapshotting a volume leaves, once the store is
// opened again, either the change done or no trace of it: no half volume,
// no file without a record, the old volume's data intact.
func TestKilled(t *testing.T) {
	prereq.Tool(t, "cryptsetup")
	prereq.Short(t, "kills child processes")
	t.Parallel()
	for _, tc := range []struct {
		op, step string
	}{
		{"create", "create:recorded"},
		{"create", "create:key"},
		{"create", "create:written"},
		{"create", "create:done"},
		{"extend", "extend:recorded"},
		{"extend", "extend:grown"},
		{"extend", "extend:done"},
		{"attach", "attach:done"},
		{"remove", "remove:recorded"},
		{"snapshot", "snapshot:recorded"},
		{"snapshot", "snapshot:done"},
	} {
		t.Run(strings.ReplaceAll(tc.step, ":", "-"), func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			e := newEnv(t, root)
			old := e.create(t, "old", 64<<20, nil)
			writeAt(t, old.Path, 20<<20, []byte("old data"))
			e.db.Close()

			cmd := exec.Command(os.Args[0], "-test.run=^TestKilledChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), "FERRY_KILL_ROOT="+root, "FERRY_KILL_OP="+tc.op, "FERRY_KILL_STEP="+tc.step)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child was not killed: %v\n%s", err, out)
			}

			e = newEnv(t, root) // recovers
			vols, err := e.s.List(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range vols {
				if v.State != StateReady {
					t.Errorf("volume %s left %s", v.Name, v.State)
				}
				fi, err := os.Stat(v.Path)
				if err != nil || fi.Size() != v.SizeBytes {
					t.Errorf("volume %s: file %v (err %v), record says %d bytes", v.Name, fi, err, v.SizeBytes)
				}
				if v.Encrypted {
					key, err := e.s.readKey(e.s.volumeDir(v.ID), v.ID, v.Name)
					if err == nil {
						err = checkKey(v.Path, v.Name, key)
					}
					if err != nil {
						t.Errorf("volume %s does not open: %v", v.Name, err)
					}
				}
			}
			names := map[string]bool{}
			for _, v := range vols {
				names[v.Name] = true
			}
			if !names["old"] && tc.op != "remove" {
				t.Fatal("the old volume is gone")
			}
			if names["old"] {
				if b := readAt(t, old.Path, 20<<20, 8); string(b) != "old data" {
					t.Errorf("old volume's data: %q", b)
				}
			}
			ents, _ := os.ReadDir(e.dir)
			for _, d := range ents {
				if d.Name() == snapshotsDir {
					continue
				}
				found := false
				for _, v := range vols {
					found = found || v.ID == d.Name()
				}
				if !found {
					t.Errorf("%s left in the volumes dir", d.Name())
				}
			}
			snaps, _ := e.s.Snapshots(ctx, "", "")
			sents, _ := os.ReadDir(filepath.Join(e.dir, snapshotsDir))
			if len(sents) != len(snaps) {
				t.Errorf("%d snapshot dirs for %d snapshots", len(sents), len(snaps))
			}
			for _, s := range snaps {
				if s.State != StateReady {
					t.Errorf("snapshot %s left %s", s.ID, s.State)
				}
			}
			// What the killed call did not finish can be done now.
			switch tc.op {
			case "create":
				if !names["new"] {
					e.create(t, "new", 64<<20, nil)
				}
			case "extend":
				if v, _ := e.s.Get(ctx, "a", "old"); v.SizeBytes != 96<<20 {
					if _, _, err := e.s.Extend(ctx, "a", "old", 96<<20); err != nil {
						t.Errorf("extend again: %v", err)
					}
				}
			}
		})
	}
}
