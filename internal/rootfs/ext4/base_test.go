package ext4_test

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ferryvm/ferry/internal/rootfs/apply"
	"github.com/ferryvm/ferry/internal/rootfs/ext4"
	ti "github.com/ferryvm/ferry/internal/rootfs/rootfstest"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// buildBase flattens img into an ext4 file and returns its path.
func buildBase(t *testing.T, ents ...[]ti.E) string {
	t.Helper()
	var tars [][]byte
	for _, e := range ents {
		tars = append(tars, ti.Tar(t, e...))
	}
	img := ti.Image(t, tars...)
	out, err := os.Create(filepath.Join(t.TempDir(), "base.ext4"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	pr, pw := io.Pipe()
	go func() {
		_, err := apply.Flatten(context.Background(), img, pw)
		pw.CloseWithError(err)
	}()
	if err := ext4.Build(context.Background(), pr, out, 0); err != nil {
		t.Fatal(err)
	}
	return out.Name()
}

func fsck(t *testing.T, path string) {
	t.Helper()
	e2fsck := prereq.Tool(t, "e2fsck")
	out, err := exec.Command(e2fsck, "-fn", path).CombinedOutput()
	if err != nil {
		t.Fatalf("e2fsck -fn %s: %v\n%s", path, err, out)
	}
}

func TestBuildPassesFsck(t *testing.T) {
	p := buildBase(t,
		[]ti.E{ti.Dir("etc/"), ti.File("etc/passwd", "root:x:0:0::/root:/bin/sh\n"), ti.Symlink("bin", "usr/bin"),
			ti.Dir("usr/"), ti.Dir("usr/bin/"), ti.File("usr/bin/sh", strings.Repeat("x", 100000)),
			ti.Hardlink("usr/bin/ash", "usr/bin/sh"),
			{Name: "dev/null", Type: tar.TypeChar, Major: 1, Minor: 3, Mode: 0o666},
			{Name: "run/fifo", Type: tar.TypeFifo, Mode: 0o600},
			{Name: "usr/bin/su", Body: "su", Mode: 0o4755},
			{Name: "tmp/", Type: tar.TypeDir, Mode: 0o1777},
			{Name: "usr/bin/ping", Body: "p", Xattrs: map[string]string{"security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"}},
		},
		[]ti.E{ti.Whiteout("etc/", "passwd"), ti.File("etc/hostname", "x")},
	)
	if k := os.Getenv("FERRY_KEEP_BASE"); k != "" {
		b, _ := os.ReadFile(p)
		os.WriteFile(k, b, 0o644)
	}
	fsck(t, p)
}

// TestSparseFilesStaySparse builds a base holding a sparse file of 256 MiB
// and a file of 8 MiB of zeros: the base's apparent size covers them,
// its allocated size is their data, and e2fsck passes.
func TestSparseFilesStaySparse(t *testing.T) {
	p := buildBase(t, []ti.E{
		{Name: "sparse", Size: 256 << 20, Sparse: map[int64]string{0: "head", 256<<20 - 4: "tail"}},
		ti.File("zeros", strings.Repeat("\x00", 8<<20)),
		ti.File("data", "data"),
	})
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	alloc := st.Sys().(*syscall.Stat_t).Blocks * 512
	if st.Size() < 256<<20 || alloc > 4<<20 {
		t.Fatalf("base: %d bytes apparent, %d allocated; want ≥ 256 MiB apparent, ≤ 4 MiB allocated", st.Size(), alloc)
	}
	fsck(t, p)
	debugfs := prereq.Tool(t, "debugfs")
	out, err := exec.Command(debugfs, "-R", "stat /sparse", p).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Size: 268435456") {
		t.Fatalf("debugfs stat /sparse: %v\n%s", err, out)
	}
}
