// Package rootfsbench measures image → rootfs: the cold build of a base
// from an image in an OCI layout (the content store's format), and warm
// per-machine rootfs creation for a small and a large image. run.sh times
// the peer pipelines on the same layout in the same run.
package rootfsbench

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/klauspost/compress/gzip"
	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/paths"
	"github.com/ferryvm/ferry/internal/rootfs"
	"github.com/ferryvm/ferry/internal/rootfs/rootfstest"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestWriteLayout writes the benchmark image (FERRY_BENCH_MB MB of files,
// default 180, in 4 layers) as an OCI layout at $FERRY_BENCH_LAYOUT,
// tagged "latest".
func TestWriteLayout(t *testing.T) {
	dir := os.Getenv("FERRY_BENCH_LAYOUT")
	if dir == "" {
		prereq.OptIn(t, "FERRY_BENCH_LAYOUT", "the writer of the benchmark image (set it to a directory)")
	}
	mb := int64(180)
	if s := os.Getenv("FERRY_BENCH_MB"); s != "" {
		mb, _ = strconv.ParseInt(s, 10, 64)
	}
	img := rootfstest.Big(t, mb<<20, 4, 42)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "latest"})); err != nil {
		t.Fatal(err)
	}
}

func layoutImage(b *testing.B) (v1.Hash, v1.Image) { return layoutImageT(b) }

func layoutImageT(b testing.TB) (v1.Hash, v1.Image) {
	dir := os.Getenv("FERRY_BENCH_LAYOUT")
	if dir == "" {
		prereq.OptIn(b, "FERRY_BENCH_LAYOUT", "the rootfs benchmarks (set it to the image's directory; run.sh does)")
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		b.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		b.Fatal(err)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		b.Fatal(err)
	}
	return im.Manifests[0].Digest, img
}

func newManager(b *testing.B, root string) *rootfs.Manager {
	db, err := bbolt.Open(filepath.Join(root, "meta.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	m, err := rootfs.New(context.Background(), db, paths.Root(root), nil, rootfs.WithLogger(quiet))
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkColdBase builds the base of the layout's image from scratch
// each iteration (blobs in the page cache, as right after a pull).
func BenchmarkColdBase(b *testing.B) {
	d, img := layoutImage(b)
	parent := os.Getenv("FERRY_BENCH_DIR")
	if parent == "" {
		parent = b.TempDir()
	}
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		root, err := os.MkdirTemp(parent, "root-")
		if err != nil {
			b.Fatal(err)
		}
		m := newManager(b, root)
		b.StartTimer()
		base, err := m.EnsureBase(context.Background(), d, img)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		b.SetBytes(base.Size)
		os.RemoveAll(root)
		b.StartTimer()
	}
}

// BenchmarkWarmPrepare creates one overlay rootfs per iteration for a
// cached small and large image.
func BenchmarkWarmPrepare(b *testing.B) {
	for _, mb := range []int64{2, 200} {
		b.Run(strconv.FormatInt(mb, 10)+"MB", func(b *testing.B) {
			img := rootfstest.Big(b, mb<<20, 4, uint64(mb))
			d, _ := img.Digest()
			m := newManager(b, b.TempDir())
			base, err := m.EnsureBase(context.Background(), d, img)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := m.Prepare(context.Background(), "warmup", base, rootfs.ModeOverlay); err != nil {
				b.Fatal(err) // formats the first scratch disk
			}
			// Start both sizes from the same I/O state: the large base's
			// writeback would otherwise slow the DB's fsyncs.
			syscall.Sync()
			for i := 0; b.Loop(); i++ {
				if _, err := m.Prepare(context.Background(), "m"+strconv.Itoa(i), base, rootfs.ModeOverlay); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFloor decompresses every layer of the layout's image in
// parallel to io.Discard with the fastest gzip decoder at hand
// (klauspost/compress, which ferry uses): no pipeline can beat this.
func BenchmarkFloor(b *testing.B) {
	_, img := layoutImage(b)
	layers, err := img.Layers()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		errs := make(chan error, len(layers))
		for _, l := range layers {
			go func() {
				rc, err := l.Compressed()
				if err != nil {
					errs <- err
					return
				}
				defer rc.Close()
				zr, err := gzip.NewReader(bufio.NewReaderSize(rc, 1<<20))
				if err == nil {
					_, err = io.Copy(io.Discard, zr)
				}
				errs <- err
			}()
		}
		for range layers {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
	}
}
