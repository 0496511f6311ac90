package rootfs_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ferryvm/ferry/internal/rootfs"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// mountRW loop-mounts an ext4 image read-write for the test's lifetime.
func mountRW(t *testing.T, img string) string {
	t.Helper()
	prereq.Loop(t)
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "ext4", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("loop-mount ext4 %s: %v: %s", img, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}

// TestOverlayOnBaseAndScratch mounts what the guest mounts: overlayfs with
// the read-only base as lower and upper/work on the scratch disk. Writes
// and deletes land on the scratch; the base stays clean.
func TestOverlayOnBaseAndScratch(t *testing.T) {
	prereq.Root(t, "loop mounts and an overlay of the base and the scratch")
	e := newEnv(t)
	img := semanticsImage(t)
	d, _ := img.Digest()
	base, err := e.m.EnsureBase(context.Background(), d, img)
	if err != nil {
		t.Fatal(err)
	}
	disks, err := e.m.Prepare(context.Background(), "g", base, rootfs.ModeOverlay)
	if err != nil {
		t.Fatal(err)
	}
	lower := mountRO(t, disks.Base)
	scratch := mountRW(t, disks.Writable)
	for _, d := range []string{"upper", "work"} {
		if err := os.Mkdir(filepath.Join(scratch, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	merged := t.TempDir()
	opts := "lowerdir=" + lower + ",upperdir=" + scratch + "/upper,workdir=" + scratch + "/work"
	if out, err := exec.Command("mount", "-t", "overlay", "overlay", "-o", opts, merged).CombinedOutput(); err != nil {
		t.Fatalf("mount overlay: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", merged).CombinedOutput(); err != nil {
			t.Errorf("umount overlay: %v: %s", err, out)
		}
	})
	if b, err := os.ReadFile(filepath.Join(merged, "usr/bin/app")); err != nil || string(b) != "app v2" {
		t.Fatalf("read through overlay: %q %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(merged, "etc/new"), []byte("n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(merged, "etc/passwd")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(merged, "etc/passwd")); !os.IsNotExist(err) {
		t.Fatalf("deleted file still visible: %v", err)
	}
	if _, err := os.Stat(filepath.Join(scratch, "upper/etc/new")); err != nil {
		t.Fatalf("write did not land on the scratch: %v", err)
	}
	if _, err := os.Stat(filepath.Join(lower, "etc/passwd")); err != nil {
		t.Fatalf("base changed: %v", err)
	}
}
