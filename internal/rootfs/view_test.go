package rootfs_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/rootfs"
	ti "github.com/ferryvm/ferry/internal/rootfs/rootfstest"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// viewMachine prepares machine "v" on an image whose symlinks point out
// of it: to /, up through .., and to an absolute host path.
func viewMachine(t *testing.T, secret string) *env {
	t.Helper()
	prereq.Loop(t)
	e := newEnv(t)
	img := ti.Image(t, ti.Tar(t, ti.Dir("etc/"), ti.File("etc/hostname", "guest\n"),
		ti.Symlink("escape", "/"), ti.Symlink("up", "../../../../.."), ti.Symlink("secret", secret)))
	d, _ := img.Digest()
	base, err := e.m.EnsureBase(context.Background(), d, img)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Prepare(context.Background(), "v", base, rootfs.ModeOverlay); err != nil {
		t.Fatal(err)
	}
	return e
}

func hostSecret(t *testing.T) string {
	t.Helper()
	secret := filepath.Join(t.TempDir(), "host-secret")
	if err := os.WriteFile(secret, []byte("host\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return secret
}

// TestViewReadsWritesAndStaysInside: a writable view's writes land on the
// scratch (the base stays as built) and a later read-only view sees them;
// a read-only view cannot write; symlinks and .. resolve inside the
// machine's root, never reaching the host's files; nothing stays mounted.
func TestViewReadsWritesAndStaysInside(t *testing.T) {
	secret := hostSecret(t)
	e := viewMachine(t, secret)
	ctx := context.Background()
	err := e.m.View(ctx, "v", true, func() error {
		if b, err := os.ReadFile("/etc/hostname"); err != nil || string(b) != "guest\n" {
			t.Errorf("/etc/hostname in the view: %q %v", b, err)
		}
		for _, p := range []string{"/escape" + secret, "/up" + secret, "/secret", "/../../.." + secret} {
			if b, err := os.ReadFile(p); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("read %s in the view: %q %v, want not found (the host's file is outside)", p, b, err)
			}
		}
		if err := os.WriteFile("/up/written", []byte("in the view\n"), 0o644); err != nil {
			t.Errorf("write through /up: %v", err)
		}
		return os.Remove("/etc/hostname")
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/written"); err == nil {
		t.Fatal("a write through a symlink reached the host's root")
	}
	err = e.m.View(ctx, "v", false, func() error {
		if b, err := os.ReadFile("/written"); err != nil || string(b) != "in the view\n" {
			t.Errorf("/written in a later view: %q %v", b, err)
		}
		if _, err := os.Stat("/etc/hostname"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("/etc/hostname removed in the writable view: %v (a whiteout on the scratch)", err)
		}
		if err := os.WriteFile("/nope", nil, 0o644); !errors.Is(err, syscall.EROFS) {
			t.Errorf("write in a read-only view: %v, want EROFS", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	requireNoViewMounts(t)
	disks, _ := e.m.Disks(ctx, "v")
	fsck(t, disks.Writable)
	fsck(t, disks.Base)
	requireDetached(t, disks.Base, disks.Writable)
}

// TestViewBusy: while a view is open, the machine's disks are busy (a
// second view, a release).
func TestViewBusy(t *testing.T) {
	e := viewMachine(t, hostSecret(t))
	ctx := context.Background()
	err := e.m.View(ctx, "v", false, func() error {
		if err := e.m.View(ctx, "v", false, func() error { return nil }); err == nil {
			t.Error("a second view of an open one was allowed")
		}
		if err := e.m.Release(ctx, "v"); err == nil {
			t.Error("release during a view was allowed")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

const viewChildEnv = "FERRY_TEST_VIEW_CHILD"

// TestViewKilledLeavesNothing: a process killed with a view open (a
// daemon killed mid-copy) leaves no mount and no loop device behind.
func TestViewKilledLeavesNothing(t *testing.T) {
	if dir := os.Getenv(viewChildEnv); dir != "" {
		viewChild(t, dir)
		return
	}
	prereq.Loop(t)
	dir := t.TempDir()
	c := exec.Command(os.Args[0], "-test.run=^TestViewKilledLeavesNothing$")
	c.Env = append(os.Environ(), viewChildEnv+"="+dir)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(dir, "ready")
	var files []string
	deadline := time.Now().Add(time.Minute)
	for len(files) < 2 {
		if time.Now().After(deadline) {
			_ = c.Process.Kill()
			_ = c.Wait()
			t.Fatal("the child never opened its view")
		}
		time.Sleep(50 * time.Millisecond)
		b, _ := os.ReadFile(ready)
		files = strings.Fields(string(b))
	}
	if n := attachedTo(t, files...); n == 0 {
		t.Fatal("the child's view attached no loop device")
	}
	_ = c.Process.Kill()
	_ = c.Wait()
	requireDetached(t, files...)
}

// viewChild opens a writable view and waits in it to be killed.
func viewChild(t *testing.T, dir string) {
	e := newEnvAt(t, filepath.Join(dir, "root"))
	img := ti.Image(t, ti.Tar(t, ti.Dir("etc/"), ti.File("etc/hostname", "guest\n")))
	d, _ := img.Digest()
	base, err := e.m.EnsureBase(context.Background(), d, img)
	if err != nil {
		t.Fatal(err)
	}
	disks, err := e.m.Prepare(context.Background(), "k", base, rootfs.ModeOverlay)
	if err != nil {
		t.Fatal(err)
	}
	// Opened before the view: the host's files are outside it.
	ready, err := os.Create(filepath.Join(dir, "ready"))
	if err != nil {
		t.Fatal(err)
	}
	_ = e.m.View(context.Background(), "k", true, func() error {
		if err := os.WriteFile("/half-written", []byte("x"), 0o644); err != nil {
			return err
		}
		if _, err := ready.WriteString(disks.Base + " " + disks.Writable + "\n"); err != nil {
			return err
		}
		select {} // until killed
	})
}

// requireNoViewMounts fails if a view's mounts show in this process's
// namespace (the host's): its tmpfs or an overlay of its disks.
func requireNoViewMounts(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "size=64k,mode=700") || strings.Contains(l, "lowerdir="+filepath.Join(os.TempDir(), "base")) {
			t.Fatalf("a view's mount is visible on the host: %s", l)
		}
	}
}

// attachedTo counts loop devices backed by any of files.
func attachedTo(t *testing.T, files ...string) int {
	t.Helper()
	n := 0
	devs, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, d := range devs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		for _, f := range files {
			if strings.TrimSpace(string(b)) == f {
				n++
			}
		}
	}
	return n
}

// requireDetached waits a little for loop devices backed by files to clear
// (autoclear runs as the last user goes) and fails if any stays.
func requireDetached(t *testing.T, files ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for attachedTo(t, files...) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("loop devices still attached to %v", files)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
