package buildctx

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

func write(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(c, "->") {
			if err := os.Symlink(c[2:], full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// tree lists dir as "path type[ content|target]" lines, without following links.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out = append(out, rel+" -> "+l)
		case fi.IsDir():
			out = append(out, rel+"/")
		default:
			b, _ := os.ReadFile(p)
			out = append(out, rel+" "+string(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestSendReceiveIgnore(t *testing.T) {
	src := t.TempDir()
	write(t, src, map[string]string{
		".dockerignore":     "# comment\n*.log\nbuild/\n!build/keep.txt\nsecret*\n**/*.tmp\n",
		"Dockerfile":        "FROM scratch\n",
		"a.txt":             "a",
		"debug.log":         "x",
		"build/out.bin":     "x",
		"build/keep.txt":    "keep",
		"src/main.go":       "package main",
		"src/deep/x.tmp":    "x",
		"secret.key":        "x",
		"link-out":          "->/etc/passwd",
		"link-in":           "->a.txt",
		"node_modules/m.js": "m",
	})
	mt := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(src, "a.txt"), mt, mt); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "src/main.go"), 0o751); err != nil {
		t.Fatal(err)
	}
	ig, err := IgnoreFor(src, "")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	st, err := Send(context.Background(), src, ig, &buf)
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if _, err := Receive(context.Background(), bytes.NewReader(buf.Bytes()), dst); err != nil {
		t.Fatal(err)
	}
	want := []string{
		".dockerignore " + "# comment\n*.log\nbuild/\n!build/keep.txt\nsecret*\n**/*.tmp\n",
		"Dockerfile FROM scratch\n", "a.txt a", "build/", "build/keep.txt keep",
		"link-in -> a.txt", "link-out -> /etc/passwd", "node_modules/", "node_modules/m.js m",
		"src/", "src/deep/", "src/main.go package main",
	}
	if got := tree(t, dst); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("received tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// build/ itself is excluded: only keep.txt travels, and its parent is made.
	if st.Files != int64(len(want))-1 {
		t.Errorf("stats %+v", st)
	}
	fi, _ := os.Stat(filepath.Join(dst, "a.txt"))
	if !fi.ModTime().Equal(mt) {
		t.Errorf("mtime %v, want %v", fi.ModTime(), mt)
	}
	fi, _ = os.Stat(filepath.Join(dst, "src/main.go"))
	if fi.Mode().Perm() != 0o751 {
		t.Errorf("mode %v", fi.Mode())
	}

	// A tar piped in unfiltered: Prune applies the ignore file afterwards.
	var raw bytes.Buffer
	if _, err := Send(context.Background(), src, nil, &raw); err != nil {
		t.Fatal(err)
	}
	dst2 := t.TempDir()
	if _, err := Receive(context.Background(), &raw, dst2); err != nil {
		t.Fatal(err)
	}
	ig2, _ := IgnoreFor(dst2, "")
	if err := Prune(dst2, ig2); err != nil {
		t.Fatal(err)
	}
	if got := tree(t, dst2); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("pruned tree:\n%s", strings.Join(got, "\n"))
	}
}

func TestRootStaysInside(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"etc/passwd": "inside", "abs": "->/etc/passwd", "up": "->../../../../etc/passwd", "sub/x": "x"})
	r, err := OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, p := range []string{"abs", "/up", "../../abs"} {
		f, err := r.Open(p)
		if err != nil {
			t.Fatalf("open %s: %v", p, err)
		}
		b, _ := io.ReadAll(f)
		f.Close()
		if string(b) != "inside" {
			t.Errorf("%s read %q, want the root's etc/passwd", p, b)
		}
	}
	if got, err := r.Resolve("abs"); err != nil || got != "etc/passwd" {
		t.Errorf("resolve = %q, %v", got, err)
	}
	if fi, err := r.Lstat("abs"); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("lstat = %v, %v", fi, err)
	}
	if _, err := r.Stat("missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat missing: %v", err)
	}
}

func TestReceiveRefusesBreakouts(t *testing.T) {
	outside := t.TempDir()
	for name, entries := range map[string][]tar.Header{
		"dotdot":           {{Name: "../escape", Typeflag: tar.TypeReg}},
		"absolute":         {{Name: "/escape", Typeflag: tar.TypeReg}},
		"through symlink":  {{Name: "l", Typeflag: tar.TypeSymlink, Linkname: outside}, {Name: "l/escape", Typeflag: tar.TypeReg}},
		"hardlink outside": {{Name: "h", Typeflag: tar.TypeLink, Linkname: "../../etc/passwd"}},
		"hardlink via symlink": {{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"},
			{Name: "h", Typeflag: tar.TypeLink, Linkname: "l"}},
		"file over dir": {{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755}, {Name: "d/x", Typeflag: tar.TypeReg}, {Name: "d", Typeflag: tar.TypeReg}},
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			for _, h := range entries {
				h.Mode |= 0o644
				tw.WriteHeader(&h)
			}
			tw.Close()
			dst := t.TempDir()
			_, err := Receive(context.Background(), &buf, dst)
			if !errors.Is(err, ErrBadContext) || !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("err = %v, want a bad-context error", err)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Fatal("a file was written outside the context")
			}
		})
	}
}

// TestLargeContextStreams: a context far larger than the memory the
// transfer may use goes through Send → pipe → Receive with the heap
// staying small.
func TestLargeContextStreams(t *testing.T) {
	prereq.Short(t, "writes 192 MiB")
	src := t.TempDir()
	const size = 192 << 20
	f, err := os.Create(filepath.Join(src, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil { // sparse: cheap to make, read as zeros
		t.Fatal(err)
	}
	f.Close()
	pr, pw := io.Pipe()
	go func() {
		_, err := Send(context.Background(), src, nil, pw)
		pw.CloseWithError(err)
	}()
	stop := make(chan struct{})
	peak := make(chan uint64)
	go func() {
		var max uint64
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				peak <- max
				return
			case <-time.After(5 * time.Millisecond):
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > max {
					max = ms.HeapInuse
				}
			}
		}
	}()
	dst := t.TempDir()
	st, err := Receive(context.Background(), pr, dst)
	close(stop)
	if err != nil {
		t.Fatal(err)
	}
	if st.Bytes != size {
		t.Fatalf("received %d bytes", st.Bytes)
	}
	if p := <-peak; p > 48<<20 {
		t.Errorf("heap peaked at %d MiB while streaming a %d MiB context", p>>20, size>>20)
	}
}
