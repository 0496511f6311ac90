package apply_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/rootfs/apply"
	ti "github.com/ferryvm/ferry/internal/rootfs/rootfstest"
)

// FuzzApply feeds two crafted tar layers to both outputs. Whatever the
// input: no panic, the sentinel beside the target is untouched, and when
// both outputs accept the image they produce the same tree.
//
//	go test -run '^$' -fuzz FuzzApply ./internal/rootfs/apply/
func FuzzApply(f *testing.F) {
	for _, c := range append(badCases(), limitCases(f)...) {
		if c.image != nil || len(c.layers) > 0 && len(c.layers[0]) > 256 {
			continue // generated bombs and huge trees are too big for a seed
		}
		var layers [2][]byte
		for i := range layers {
			if i >= len(c.layers) && i-len(c.layers) < len(c.raw) && len(c.raw[i-len(c.layers)]) <= 1<<20 {
				layers[i] = c.raw[i-len(c.layers)]
				continue
			}
			if i < len(c.layers) {
				var ents []ti.E
				for _, e := range c.layers[i] {
					if e.Sparse == nil && e.Size > 1<<20 || len(e.Body) > 1<<16 {
						continue
					}
					e.Name = strings.ReplaceAll(e.Name, "@S@", "/tmp/sentinel")
					e.Link = strings.ReplaceAll(e.Link, "@S@", "/tmp/sentinel")
					ents = append(ents, e)
				}
				layers[i] = ti.Tar(f, ents...)
			}
		}
		f.Add(layers[0], layers[1])
	}
	for _, l := range semanticsSeed() {
		f.Add(ti.Tar(f, l[0]...), ti.Tar(f, l[1]...))
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		s := newSandbox(t)
		img := ti.FromLayers(t, ti.Uncompressed(t, a), ti.Uncompressed(t, b))
		opts := []apply.Option{apply.WithMaxSize(16 << 20), apply.WithMaxEntries(4096), apply.WithLogger(quiet), apply.WithSpoolDir(t.TempDir())}
		dirErr := apply.ApplyDir(context.Background(), img, s.root, opts...)
		s.check(t)
		var buf bytes.Buffer
		_, flatErr := apply.Flatten(context.Background(), img, &buf, opts...)
		if (dirErr == nil) != (flatErr == nil) {
			t.Fatalf("verdicts differ: ApplyDir %v, Flatten %v", dirErr, flatErr)
		}
		if dirErr != nil {
			return
		}
		want, got := ti.ListDir(t, s.root), ti.ListTar(t, &buf)
		delete(want, ".")
		delete(got, ".")
		if d := ti.Diff(want, got); len(d) > 0 {
			t.Fatalf("trees differ:\n%s", strings.Join(d, "\n"))
		}
	})
}

// semanticsSeed is a benign two-layer image with every rule in it.
func semanticsSeed() [][2][]ti.E {
	return [][2][]ti.E{{
		{ti.Dir("a/"), ti.File("a/f", "1"), ti.Hardlink("a/h", "a/f"), ti.Symlink("a/s", "/a/f"), ti.Dir("a/o/"), ti.File("a/o/x", "x")},
		{ti.Whiteout("a/", "f"), ti.File("a/o/y", "y"), ti.Opaque("a/o/"), ti.Symlink("l", "a"), ti.File("l/via", "v")},
	}}
}
