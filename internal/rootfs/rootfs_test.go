package rootfs_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/paths"
	"github.com/ferryvm/ferry/internal/rootfs"
	"github.com/ferryvm/ferry/internal/rootfs/apply"
	ti "github.com/ferryvm/ferry/internal/rootfs/rootfstest"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// fakeLeaser records image leases.
type fakeLeaser struct {
	mu     sync.Mutex
	adds   atomic.Int32
	leases map[string]v1.Hash
}

func (f *fakeLeaser) AddLease(_ context.Context, id string, d v1.Hash) error {
	f.adds.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.leases == nil {
		f.leases = map[string]v1.Hash{}
	}
	f.leases[id] = d
	return nil
}

func (f *fakeLeaser) RemoveLease(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.leases, id)
	return nil
}

func (f *fakeLeaser) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.leases)
}

type env struct {
	root   paths.Root
	db     *bbolt.DB
	leaser *fakeLeaser
	m      *rootfs.Manager
}

func newEnv(t testing.TB, opts ...rootfs.Option) *env {
	t.Helper()
	return newEnvAt(t, t.TempDir(), opts...)
}

func newEnvAt(t testing.TB, dir string, opts ...rootfs.Option) *env {
	t.Helper()
	prereq.Tools(t, "mkfs.ext4", "e2fsck", "resize2fs")
	root := paths.Root(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(filepath.Join(string(root), "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &env{root: root, db: db, leaser: &fakeLeaser{}}
	e.reopen(t, opts...)
	return e
}

func (e *env) reopen(t testing.TB, opts ...rootfs.Option) {
	t.Helper()
	opts = append([]rootfs.Option{rootfs.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, opts...)
	m, err := rootfs.New(context.Background(), e.db, e.root, e.leaser, opts...)
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
}

func smallImage(t testing.TB) (v1.Hash, v1.Image) {
	img := ti.Image(t,
		ti.Tar(t, ti.Dir("etc/"), ti.File("etc/os-release", "ID=ferry\n"), ti.Dir("bin/"), ti.File("bin/sh", "#!sh")),
		ti.Tar(t, ti.Whiteout("etc/", "os-release"), ti.File("etc/hostname", "h\n")),
	)
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d, img
}

func fsck(t testing.TB, p string) {
	t.Helper()
	if out, err := exec.Command("e2fsck", "-fn", p).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck -fn %s: %v\n%s", p, err, out)
	}
}

func allocated(t testing.TB, p string) int64 {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Blocks * 512
}

func TestEnsureBaseBuildsOnceAndIsReadOnly(t *testing.T) {
	e := newEnv(t)
	d, img := smallImage(t)
	var wg sync.WaitGroup
	bases := make([]rootfs.Base, 8)
	errs := make([]error, 8)
	for i := range bases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bases[i], errs[i] = e.m.EnsureBase(context.Background(), d, img)
		}()
	}
	wg.Wait()
	for i := range bases {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if bases[i].Path != bases[0].Path {
			t.Fatalf("different paths %s, %s", bases[i].Path, bases[0].Path)
		}
	}
	if n := e.leaser.adds.Load(); n != 1 {
		t.Fatalf("image leased %d times, want one build", n)
	}
	if want := filepath.Join(e.root.Bases(), d.Hex+".ext4"); bases[0].Path != want {
		t.Fatalf("base at %s, want %s", bases[0].Path, want)
	}
	st, err := os.Stat(bases[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o444 {
		t.Fatalf("base mode %v, want read-only", st.Mode())
	}
	fsck(t, bases[0].Path)
	if tmp, _ := os.ReadDir(e.root.RootfsTmp()); len(tmp) != 0 {
		t.Fatalf("tmp not empty after build: %v", tmp)
	}
	// A second Manager on the same DB finds it without building.
	e.reopen(t)
	if _, err := e.m.EnsureBase(context.Background(), d, img); err != nil {
		t.Fatal(err)
	}
	if n := e.leaser.adds.Load(); n != 1 {
		t.Fatalf("rebuilt after reopen (%d leases)", n)
	}
}

// TestEnsureBaseBadImageLeavesNothing builds bases of hostile images:
// each fails with one line naming the entry and the limit, and leaves no
// base, no spool or temp file, no record and no lease.
func TestEnsureBaseBadImageLeavesNothing(t *testing.T) {
	limits := apply.Limits{MaxStream: 64 << 20, MaxMetadata: 1 << 20}
	zeros := strings.Repeat("\x00", 1<<20)
	var meta []ti.E
	for i := range 4000 {
		meta = append(meta, ti.File(fmt.Sprintf("d/%s%d", strings.Repeat("m", 200), i), ""))
	}
	for _, c := range []struct {
		name string
		img  v1.Image
		want string
	}{
		{"breakout", ti.Image(t, ti.Tar(t, ti.File("../escape", "x"))), `entry "../escape": name contains ".."`},
		{"pax-path-64k", ti.Image(t, ti.Tar(t, ti.File(strings.Repeat("a/", 32768)+"f", "x"))), "longer than PATH_MAX"},
		{"metadata", ti.Image(t, ti.Tar(t, meta...)), "metadata (names, link targets, xattrs, tree) exceeds the limit of 1048576 bytes (1.0 MiB, --layer-max-metadata)"},
		{"bomb-after-data", ti.FromLayers(t,
			ti.Layer(t, ti.Tar(t, ti.File("a", zeros), ti.File("b", strings.Repeat("b", 8<<20))), false),
			ti.Bomb(t, "zeros", 96<<20, false)), `entry "zeros": total file size exceeds the limit of 67108864 bytes (64 MiB, --layer-max-stream)`},
		{"sparse-claim", ti.Image(t, ti.Tar(t, ti.E{Name: "s", Size: 1 << 40, Sparse: map[int64]string{0: "x"}})), "total apparent size of sparse files"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, rootfs.WithLayerLimits(limits), rootfs.WithApplyOptions(apply.WithSpoolMemory(4<<20)))
			d, _ := c.img.Digest()
			_, err := e.m.EnsureBase(context.Background(), d, c.img)
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %.500v, want invalid argument with %q", err, c.want)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || len(msg) > 512 {
				t.Fatalf("not one short line (%d bytes): %.600q", len(msg), msg)
			}
			if _, err := e.m.Base(context.Background(), d); !errors.Is(err, errdefs.ErrNotFound) {
				t.Fatalf("Base after failed build: %v", err)
			}
			for _, dir := range []string{e.root.Bases(), e.root.RootfsTmp()} {
				if ents, _ := os.ReadDir(dir); len(ents) != 0 {
					t.Fatalf("%s not empty: %v", dir, ents)
				}
			}
			if e.leaser.count() != 0 {
				t.Fatalf("lease left behind: %v", e.leaser.leases)
			}
		})
	}
}

func TestOverlayPrepareIsSparseAndReleases(t *testing.T) {
	e := newEnv(t)
	d, img := smallImage(t)
	base, err := e.m.EnsureBase(context.Background(), d, img)
	if err != nil {
		t.Fatal(err)
	}
	disks, err := e.m.Prepare(context.Background(), "m1", base, rootfs.ModeOverlay)
	if err != nil {
		t.Fatal(err)
	}
	if disks.Base != base.Path || disks.Writable != filepath.Join(e.root.Machine("m1"), "scratch.ext4") {
		t.Fatalf("disks = %+v", disks)
	}
	st, _ := os.Stat(disks.Writable)
	if st.Size() != rootfs.DefaultScratchSize {
		t.Fatalf("scratch apparent size %d", st.Size())
	}
	a := allocated(t, disks.Writable)
	if a >= 1<<20 {
		t.Fatalf("scratch allocates %d bytes, want < 1 MiB", a)
	}
	t.Logf("scratch: %d bytes apparent, %d allocated", st.Size(), a)
	fsck(t, disks.Writable)
	again, err := e.m.Prepare(context.Background(), "m1", base, rootfs.ModeOverlay)
	if err != nil || again != disks {
		t.Fatalf("idempotent Prepare = %+v, %v", again, err)
	}
	if _, err := e.m.Prepare(context.Background(), "m1", base, rootfs.ModePersistent); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("mode change: %v, want conflict", err)
	}
	if err := e.m.RemoveBase(context.Background(), d); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("RemoveBase while used: %v, want conflict", err)
	}
	if err := e.m.Release(context.Background(), "m1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(disks.Writable); !os.IsNotExist(err) {
		t.Fatalf("scratch still there: %v", err)
	}
	if err := e.m.Release(context.Background(), "m1"); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	rep, err := e.m.GC(context.Background(), rootfs.PruneUnused())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.BasesRemoved) != 1 || e.leaser.count() != 0 {
		t.Fatalf("GC report %+v, leases %v", rep, e.leaser.leases)
	}
	if _, err := os.Stat(base.Path); !os.IsNotExist(err) {
		t.Fatalf("base still there after prune: %v", err)
	}
}

func TestPersistentCloneIsWritableExt4(t *testing.T) {
	prereq.Tools(t, "dumpe2fs", "debugfs")
	e := newEnv(t)
	d, img := smallImage(t)
	base, err := e.m.EnsureBase(context.Background(), d, img)
	if err != nil {
		t.Fatal(err)
	}
	disks, err := e.m.Prepare(context.Background(), "p1", base, rootfs.ModePersistent, rootfs.WithSize(1<<30))
	if err != nil {
		t.Fatal(err)
	}
	if disks.Base != "" || disks.Clone == "" {
		t.Fatalf("disks = %+v", disks)
	}
	fsck(t, disks.Writable)
	out, err := exec.Command("dumpe2fs", "-h", disks.Writable).CombinedOutput()
	if err != nil {
		t.Fatalf("dumpe2fs: %v\n%s", err, out)
	}
	if containsWord(string(out), "read-only") {
		t.Fatalf("clone still flagged read-only:\n%s", out)
	}
	if !containsWord(string(out), "262144") {
		t.Fatalf("clone not grown to 1 GiB:\n%s", out)
	}
	if out, err := exec.Command("debugfs", "-R", "cat /etc/hostname", disks.Writable).Output(); err != nil || string(out) != "h\n" {
		t.Fatalf("clone content: %q %v", out, err)
	}
}

func containsWord(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		if s[i:i+len(w)] == w {
			return true
		}
	}
	return false
}

func TestCrashLeftoversAreCleaned(t *testing.T) {
	e := newEnv(t)
	d, img := smallImage(t)
	base, err := e.m.EnsureBase(context.Background(), d, img)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Prepare(context.Background(), "keep", base, rootfs.ModeOverlay); err != nil {
		t.Fatal(err)
	}
	// Leftovers of a crashed daemon: a half-built base in tmp/, an
	// unrecorded base, a machine disk without a record.
	stale := []string{
		filepath.Join(e.root.RootfsTmp(), "abc-123.ext4"),
		filepath.Join(e.root.Bases(), "0000000000000000000000000000000000000000000000000000000000000000.ext4"),
		filepath.Join(e.root.Machine("gone"), "scratch.ext4"),
	}
	for _, p := range stale {
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte("half"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.reopen(t)
	for _, p := range stale {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s survived restart", p)
		}
	}
	if _, err := e.m.Disks(context.Background(), "keep"); err != nil {
		t.Fatalf("live machine lost: %v", err)
	}
	if _, err := e.m.Base(context.Background(), d); err != nil {
		t.Fatalf("live base lost: %v", err)
	}
}

// TestPrepareIsO1InImageSize creates 20 overlay rootfs for a 2 MB and a
// 200 MB image: each must allocate < 1 MiB whatever the image size.
// (Timing is in bench/rootfs, not asserted here.)
func TestPrepareIsO1InImageSize(t *testing.T) {
	prereq.Short(t, "builds a 200 MB image")
	e := newEnv(t)
	for _, size := range []int64{2 << 20, 200 << 20} {
		img := ti.Big(t, size, 4, uint64(size))
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		base, err := e.m.EnsureBase(context.Background(), d, img)
		if err != nil {
			t.Fatal(err)
		}
		if base.Size < size {
			t.Fatalf("base of %d bytes for %d bytes of files", base.Size, size)
		}
		for i := range 20 {
			id := "m" + string(rune('a'+i)) + "-" + d.Hex[:8]
			disks, err := e.m.Prepare(context.Background(), id, base, rootfs.ModeOverlay)
			if err != nil {
				t.Fatal(err)
			}
			if a := allocated(t, disks.Writable); a >= 1<<20 {
				t.Fatalf("image %d MB: machine %s allocates %d bytes", size>>20, id, a)
			}
		}
	}
}

// TestInterruptedBuildIsUndoneOnStart: a daemon died mid-build, leaving a
// "building" record and the image lease; the next start removes both.
func TestInterruptedBuildIsUndoneOnStart(t *testing.T) {
	e := newEnv(t)
	hex := strings.Repeat("ab", 32)
	d := v1.Hash{Algorithm: "sha256", Hex: hex}
	if err := e.leaser.AddLease(context.Background(), "rootfs/base/"+hex, d); err != nil {
		t.Fatal(err)
	}
	if err := e.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("rootfs")).Bucket([]byte("bases")).Put([]byte(hex), []byte(`{"digest":"sha256:`+hex+`","state":"building"}`))
	}); err != nil {
		t.Fatal(err)
	}
	e.reopen(t)
	if e.leaser.count() != 0 {
		t.Fatalf("lease of the interrupted build kept: %v", e.leaser.leases)
	}
	if _, err := e.m.Base(context.Background(), d); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("interrupted base visible: %v", err)
	}
	if u, err := e.m.Usage(context.Background()); err != nil || len(u.Bases) != 0 {
		t.Fatalf("usage after restart: %+v, %v", u, err)
	}
}
