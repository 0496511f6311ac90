// Package rootfstest builds small OCI images in memory for rootfs tests:
// hand-written tar layers (any header, including hostile ones) wrapped by
// go-containerregistry, and large random-but-compressible images for the
// O(1) checks and benchmarks. Test-only; nothing in ferry's binaries
// imports it.
package rootfstest

import (
	"archive/tar"
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Epoch is the mtime of every entry that does not set one.
var Epoch = time.Unix(1700000000, 0)

// E is one tar entry. Zero fields get defaults: Type '0' (or '5' when the
// name ends in "/"), Mode 0644 (0755 for directories), mtime Epoch.
type E struct {
	Name     string
	Type     byte
	Body     string
	Size     int64 // overrides len(Body) in the header when set (lying headers)
	Link     string
	Mode     int64
	UID, GID int
	Major    int64
	Minor    int64
	Xattrs   map[string]string
	PAX      map[string]string
	Format   tar.Format
	ModTime  time.Time
	// Sparse, when set, makes a GNU sparse 1.0 (PAX) file of apparent
	// size Size holding these data fragments at their offsets (archive/tar
	// cannot write one: the entry is written raw).
	Sparse map[int64]string
}

// Dir, File, Symlink, Hardlink and Whiteout are shorthands.
func Dir(name string) E              { return E{Name: name, Type: tar.TypeDir} }
func File(name, body string) E       { return E{Name: name, Body: body} }
func Symlink(name, target string) E  { return E{Name: name, Type: tar.TypeSymlink, Link: target} }
func Hardlink(name, target string) E { return E{Name: name, Type: tar.TypeLink, Link: target} }
func Whiteout(dir, name string) E    { return E{Name: dir + ".wh." + name} }
func Opaque(dir string) E            { return E{Name: dir + ".wh..wh..opq"} }

// Tar writes entries as an uncompressed tar. It fails t on writer errors.
func Tar(t testing.TB, ents ...E) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		if e.Sparse != nil {
			_ = tw.Flush()
			buf.Write(SparseEntry(e.Name, e.Size, e.Sparse))
			continue
		}
		h := &tar.Header{
			Name: e.Name, Typeflag: e.Type, Linkname: e.Link, Mode: e.Mode,
			Uid: e.UID, Gid: e.GID, Devmajor: e.Major, Devminor: e.Minor,
			ModTime: e.ModTime, Format: e.Format, Size: int64(len(e.Body)),
		}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
			if len(e.Name) > 0 && e.Name[len(e.Name)-1] == '/' {
				h.Typeflag = tar.TypeDir
			}
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if e.Size != 0 {
			h.Size = e.Size
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.ModTime.IsZero() {
			h.ModTime = Epoch
		}
		if len(e.Xattrs) > 0 || len(e.PAX) > 0 {
			h.PAXRecords = map[string]string{}
			h.Format = tar.FormatPAX
			for k, v := range e.Xattrs {
				h.PAXRecords["SCHILY.xattr."+k] = v
			}
			for k, v := range e.PAX {
				h.PAXRecords[k] = v
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %q: %v", e.Name, err)
		}
		if h.Typeflag == tar.TypeReg && e.Body != "" {
			if _, err := tw.Write([]byte(e.Body)); err != nil && e.Size == 0 {
				t.Fatalf("tar body %q: %v", e.Name, err)
			}
		}
	}
	_ = tw.Flush() // no Close: a lying Size fails Flush, and must not fail here
	buf.Write(make([]byte, 1024))
	return buf.Bytes()
}

// Layer wraps an uncompressed tar as a gzip (or, with zstd, zstd) layer.
func Layer(t testing.TB, tarball_ []byte, zstd bool) v1.Layer {
	t.Helper()
	opener := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(tarball_)), nil }
	opts := []tarball.LayerOption{tarball.WithMediaType(types.OCILayer)}
	if zstd {
		opts = append(opts, tarball.WithCompression("zstd"), tarball.WithMediaType(types.OCILayerZStd))
	}
	opts = append(opts, tarball.WithCompressedCaching)
	l, err := tarball.LayerFromOpener(opener, opts...)
	if err != nil {
		t.Fatalf("layer: %v", err)
	}
	return l
}

// Image stacks tar layers (gzip) into an image.
func Image(t testing.TB, tars ...[]byte) v1.Image {
	t.Helper()
	var ls []v1.Layer
	for _, b := range tars {
		ls = append(ls, Layer(t, b, false))
	}
	return FromLayers(t, ls...)
}

// FromLayers stacks layers into an OCI image.
func FromLayers(t testing.TB, ls ...v1.Layer) v1.Image {
	t.Helper()
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, ls...)
	if err != nil {
		t.Fatalf("image: %v", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatalf("image: %v", err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatalf("image: %v", err)
	}
	return img
}

// Big returns an image of nLayers layers holding about totalBytes of
// compressible pseudo-random file data (text-like, ~3:1 under gzip), in
// files of 4 KiB to 1 MiB spread over directories. Same seed, same image.
func Big(t testing.TB, totalBytes int64, nLayers int, seed uint64) v1.Image {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) //nolint:gosec // G404: test data must repeat for a seed
	words := make([][]byte, 512)
	for i := range words {
		w := make([]byte, 2+r.IntN(9))
		for j := range w {
			w[j] = byte('a' + r.IntN(26))
		}
		words[i] = w
	}
	per := totalBytes / int64(nLayers)
	var ls []v1.Layer
	for l := 0; l < nLayers; l++ {
		var ents []E
		var n int64
		for d := 0; n < per; d++ {
			dir := "usr/share/l" + itoa(l) + "/d" + itoa(d) + "/"
			ents = append(ents, Dir(dir))
			for f := 0; f < 32 && n < per; f++ {
				size := int64(4096 + r.IntN(1<<20))
				if size > per-n {
					size = per - n
				}
				var body bytes.Buffer
				for int64(body.Len()) < size {
					body.Write(words[r.IntN(len(words))])
					body.WriteByte(' ')
				}
				ents = append(ents, File(dir+"f"+itoa(f), body.String()[:size]))
				n += size
			}
		}
		ls = append(ls, Layer(t, Tar(t, ents...), false))
	}
	return FromLayers(t, ls...)
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

// Uncompressed wraps a tar as an uncompressed OCI layer.
func Uncompressed(t testing.TB, raw []byte) v1.Layer {
	t.Helper()
	return static.NewLayer(raw, types.OCIUncompressedLayer)
}
