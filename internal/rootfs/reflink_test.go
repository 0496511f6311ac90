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

// loopXFS makes a reflink-capable XFS on a loop device, mounted at a temp
// dir for the test's lifetime.
func loopXFS(t *testing.T) string {
	t.Helper()
	prereq.Loop(t)
	prereq.Tool(t, "mkfs.xfs")
	img := filepath.Join(t.TempDir(), "xfs.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 1<<30); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.xfs", "-q", "-m", "reflink=1", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs: %v\n%s", err, out)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("loop-mount XFS: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}

// TestPersistentCloneReflinksOnXFS puts the data dir on XFS: persistent
// clones are reflinks, and overlay scratch disks too are cheap.
func TestPersistentCloneReflinksOnXFS(t *testing.T) {
	mnt := loopXFS(t)
	e := newEnvAt(t, filepath.Join(mnt, "ferry"))
	d, img := smallImage(t)
	base, err := e.m.EnsureBase(context.Background(), d, img)
	if err != nil {
		t.Fatal(err)
	}
	disks, err := e.m.Prepare(context.Background(), "p", base, rootfs.ModePersistent, rootfs.WithSize(256<<20))
	if err != nil {
		t.Fatal(err)
	}
	if disks.Clone != rootfs.CloneReflink {
		t.Fatalf("clone method %q, want reflink", disks.Clone)
	}
	fsck(t, disks.Writable)
	fsck(t, base.Path) // the clone's writes did not reach the base
	sc, err := e.m.Prepare(context.Background(), "o", base, rootfs.ModeOverlay)
	if err != nil {
		t.Fatal(err)
	}
	if a := allocated(t, sc.Writable); a >= 1<<20 {
		t.Fatalf("scratch on XFS allocates %d bytes", a)
	}
	for _, id := range []string{"p", "o"} {
		if err := e.m.Release(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}
}
