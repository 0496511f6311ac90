// Package layersbench measures what hostile layers cost the daemon: its
// peak RSS and the time to reject each image of a corpus of memory, disk
// and time bombs (generated here, never downloaded), against peers
// (umoci unpack, GNU tar) on the same layers. run.sh drives it.
package layersbench

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	ti "github.com/ferryvm/ferry/internal/rootfs/rootfstest"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// hostile is one image of the corpus; claim is what its layers claim
// (bytes of files, holes, xattrs or names), for the table.
type hostile struct {
	name  string
	claim string
	img   func(t testing.TB) v1.Image
}

func one(t testing.TB, ents ...ti.E) v1.Image { return ti.Image(t, ti.Tar(t, ents...)) }

func corpus() []hostile {
	return []hostile{
		{"pax-path-64k", "1 name of 64 KiB, 32k components", func(t testing.TB) v1.Image {
			return one(t, ti.File(strings.Repeat("a/", 32768)+"f", "x"))
		}},
		{"deep-600-entries", "600 nested directories", func(t testing.TB) v1.Image {
			var e []ti.E
			for i := 1; i <= 600; i++ {
				e = append(e, ti.Dir(strings.Repeat("d/", i)))
			}
			return one(t, e...)
		}},
		{"symlink-walk", "3 symlinks resolving through 6k components", func(t testing.TB) v1.Image {
			w := strings.Repeat("./", 2046)
			return one(t, ti.Dir("d/"), ti.Symlink("t1", w+"d"), ti.Symlink("t2", "t1/"+w), ti.Symlink("t3", "t2/"+w), ti.File("t3/f", "x"))
		}},
		{"xattr-1000k-x200", "200 MiB of xattrs (200 × 1000 KiB)", func(t testing.TB) v1.Image {
			return xattrs(t, 200, 1000<<10)
		}},
		{"xattr-64k-x4000", "250 MiB of xattrs (4000 × 64 KiB)", func(t testing.TB) v1.Image {
			return xattrs(t, 4000, 64<<10)
		}},
		{"entries-1m", "1M entries", func(t testing.TB) v1.Image {
			e := make([]ti.E, 0, 1<<20)
			for i := range 1 << 20 {
				e = append(e, ti.File(fmt.Sprintf("d%04d/f%07d", i>>10, i), ""))
			}
			return one(t, e...)
		}},
		{"sparse-1t", "1 TiB sparse (GNU 1.0), 1 byte of data", func(t testing.TB) v1.Image {
			return one(t, ti.E{Name: "s", Size: 1 << 40, Sparse: map[int64]string{0: "x"}})
		}},
		{"sparse-16g-then-1t", "2 × 8 GiB sparse, then 1 TiB", func(t testing.TB) v1.Image {
			sp := func(n string, size int64) ti.E {
				return ti.E{Name: n, Size: size, Sparse: map[int64]string{0: "x", size - 1: "y"}}
			}
			return one(t, sp("a", 8<<30), sp("b", 8<<30-1<<20), sp("c", 1<<40))
		}},
		{"gzip-claims-16g", "16 GiB file, 320 MiB of gzip zeros", func(t testing.TB) v1.Image {
			return ti.FromLayers(t, ti.TruncatedBomb(t, "zeros", 16<<30, 320<<20, false))
		}},
		{"gzip-claims-1t", "1 TiB file, 320 MiB of gzip zeros", func(t testing.TB) v1.Image {
			return ti.FromLayers(t, ti.TruncatedBomb(t, "zeros", 1<<40, 320<<20, false))
		}},
		{"zstd-claims-16g", "16 GiB file, 320 MiB of zstd zeros", func(t testing.TB) v1.Image {
			return ti.FromLayers(t, ti.TruncatedBomb(t, "zeros", 16<<30, 320<<20, true))
		}},
		{"gzip-tail-4g", "4 GiB of zeros after the end of the archive", func(t testing.TB) v1.Image {
			return ti.FromLayers(t, ti.TailBomb(t, ti.Tar(t, ti.File("f", "x")), 4<<30))
		}},
		{"layers-300", "300 layers", func(t testing.TB) v1.Image {
			var ls []v1.Layer
			for i := range 300 {
				ls = append(ls, ti.Layer(t, ti.Tar(t, ti.File(fmt.Sprintf("f%d", i), "x")), false))
			}
			return ti.FromLayers(t, ls...)
		}},
	}
}

func xattrs(t testing.TB, n, size int) v1.Image {
	v := strings.Repeat("v", size)
	e := make([]ti.E, n)
	for i := range e {
		e[i] = ti.E{Name: fmt.Sprintf("f%05d", i), Body: "x", Xattrs: map[string]string{"user.big": v}}
	}
	return one(t, e...)
}

// TestWriteCorpus writes each image as an OCI layout under
// $FERRY_BENCH_CORPUS/<name>/ (ref.name "latest" for umoci;
// io.containerd.image.name "hostile/<name>:latest" for ferry load), and
// a line "name<TAB>claim" per image to index.tsv.
func TestWriteCorpus(t *testing.T) {
	dir := os.Getenv("FERRY_BENCH_CORPUS")
	if dir == "" {
		prereq.OptIn(t, "FERRY_BENCH_CORPUS", "the writer of the hostile-layer corpus (set it to a directory; run.sh does)")
	}
	var index strings.Builder
	for _, h := range corpus() {
		p, err := layout.Write(filepath.Join(dir, h.name), empty.Index)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.AppendImage(h.img(t), layout.WithAnnotations(map[string]string{
			"org.opencontainers.image.ref.name": "latest",
			"io.containerd.image.name":          "hostile/" + h.name + ":latest",
		})); err != nil {
			t.Fatalf("%s: %v", h.name, err)
		}
		fmt.Fprintf(&index, "%s\t%s\n", h.name, h.claim)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.tsv"), []byte(index.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
