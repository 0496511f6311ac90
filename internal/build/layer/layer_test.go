package layer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/build/buildctx"
	"github.com/ferryvm/ferry/internal/errdefs"
)

type hdr = tar.Header

func mkTar(t *testing.T, hs ...hdr) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hs {
		body := ""
		if h.Typeflag == tar.TypeReg {
			body = h.Linkname // test shorthand: content in Linkname
			h.Linkname = ""
			h.Size = int64(len(body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, body)
	}
	tw.Close()
	return buf.Bytes()
}

func TestTreeWhiteoutsAndResolve(t *testing.T) {
	tr := NewTree()
	layers := [][]byte{
		mkTar(t, hdr{Name: "usr/", Typeflag: tar.TypeDir}, hdr{Name: "usr/bin/", Typeflag: tar.TypeDir},
			hdr{Name: "bin", Typeflag: tar.TypeSymlink, Linkname: "usr/bin"},
			hdr{Name: "etc/passwd", Typeflag: tar.TypeReg, Linkname: "root:x:0:0::/root:/bin/sh\n"},
			hdr{Name: "d/a", Typeflag: tar.TypeReg}, hdr{Name: "d/b", Typeflag: tar.TypeReg},
			hdr{Name: "gone", Typeflag: tar.TypeReg}, hdr{Name: "loop", Typeflag: tar.TypeSymlink, Linkname: "/loop"},
			hdr{Name: "up", Typeflag: tar.TypeSymlink, Linkname: "../../../usr"}),
		mkTar(t, hdr{Name: ".wh.gone", Typeflag: tar.TypeReg}, hdr{Name: "d/.wh..wh..opq", Typeflag: tar.TypeReg},
			hdr{Name: "d/c", Typeflag: tar.TypeReg}),
	}
	for _, l := range layers {
		if err := tr.Apply(bytes.NewReader(l)); err != nil {
			t.Fatal(err)
		}
	}
	got := strings.Join(tr.Paths(), " ")
	if want := "bin d d/c etc etc/passwd loop up usr usr/bin"; got != want {
		t.Errorf("paths = %s, want %s", got, want)
	}
	if !strings.HasPrefix(string(tr.Content("/etc/passwd")), "root:") {
		t.Error("passwd content not kept")
	}
	for p, want := range map[string]string{"/bin/sh": "usr/bin/sh", "bin": "usr/bin", "/up/bin": "usr/bin", "/x/y": "x/y"} {
		if got, _, err := tr.Resolve(p); err != nil || got != want {
			t.Errorf("resolve %s = %q, %v; want %q", p, got, err, want)
		}
	}
	if _, _, err := tr.Resolve("/loop/x"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("loop: %v", err)
	}
}

// ctxDir builds a source tree; values "->x" are symlinks, "/" suffix dirs.
func ctxDir(t *testing.T, files map[string]string) *buildctx.Root {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		switch {
		case strings.HasSuffix(p, "/"):
			os.MkdirAll(full, 0o750)
		case strings.HasPrefix(c, "->"):
			os.Symlink(c[2:], full)
		default:
			os.WriteFile(full, []byte(c), 0o640)
		}
	}
	r, err := buildctx.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// memSink keeps blobs in memory.
type memSink struct{ blobs map[v1.Hash][]byte }

func (m *memSink) PutBlob(ctx context.Context, lease string, r io.Reader) (v1.Hash, int64, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	s := sha256.Sum256(b)
	d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
	if m.blobs == nil {
		m.blobs = map[v1.Hash][]byte{}
	}
	m.blobs[d] = b
	return d, int64(len(b)), nil
}

// listing renders a layer blob as sorted "name type mode uid:gid [content|link]".
func listing(t *testing.T, blob []byte) []string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		s := fmt.Sprintf("%s %c %o %d:%d", h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid)
		if h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeLink {
			s += " -> " + h.Linkname
		} else if len(b) > 0 {
			s += " " + string(b)
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func copyLayer(t *testing.T, src *buildctx.Root, spec CopySpec, lower *Tree) ([]string, error) {
	t.Helper()
	sink := &memSink{}
	b, err := Write(context.Background(), sink, "test", Normalizer{}, func(w *TarWriter) error { return Copy(w, src, spec, lower) })
	if err != nil {
		return nil, err
	}
	return listing(t, sink.blobs[b.Digest]), nil
}

func tgz(t *testing.T, hs ...hdr) string {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(mkTar(t, hs...))
	zw.Close()
	return buf.String()
}

func TestCopy(t *testing.T) {
	src := ctxDir(t, map[string]string{
		"a.txt": "A", "b.txt": "B", "app/main.go": "main", "app/lib/x.go": "x", "app/link": "->main.go",
		"app/skip.log": "log", "top-link": "->/a.txt", "empty/": "",
		"bundle.tgz": tgz(t, hdr{Name: "pkg/", Typeflag: tar.TypeDir, Mode: 0o755}, hdr{Name: "pkg/f", Typeflag: tar.TypeReg, Linkname: "F", Uid: 7},
			hdr{Name: "pkg/hl", Typeflag: tar.TypeLink, Linkname: "pkg/f"}),
		"evil.tar": string(mkTar(t, hdr{Name: "../../etc/x", Typeflag: tar.TypeReg})),
	})
	lower := NewTree()
	lower.Apply(bytes.NewReader(mkTar(t, hdr{Name: "usr/bin/", Typeflag: tar.TypeDir}, hdr{Name: "bin", Typeflag: tar.TypeSymlink, Linkname: "usr/bin"},
		hdr{Name: "etc/", Typeflag: tar.TypeDir}, hdr{Name: "etc/hostname", Typeflag: tar.TypeReg})))
	mode := int64(0o600)
	for name, tc := range map[string]struct {
		spec CopySpec
		want []string
		err  string
	}{
		"file to new dir": {CopySpec{Sources: []string{"a.txt"}, Dest: "/opt/x/"},
			[]string{"opt/ 5 755 0:0", "opt/x/ 5 755 0:0", "opt/x/a.txt 0 640 0:0 A"}, ""},
		"file renamed":                    {CopySpec{Sources: []string{"a.txt"}, Dest: "/etc/motd"}, []string{"etc/motd 0 640 0:0 A"}, ""},
		"into existing dir without slash": {CopySpec{Sources: []string{"a.txt"}, Dest: "/etc"}, []string{"etc/a.txt 0 640 0:0 A"}, ""},
		"through a symlinked dir":         {CopySpec{Sources: []string{"a.txt"}, Dest: "/bin/"}, []string{"usr/bin/a.txt 0 640 0:0 A"}, ""},
		"dir contents, chown, exclude": {CopySpec{Sources: []string{"app"}, Dest: "/srv", Owner: &Owner{1000, 1000}, Exclude: []string{"*.log"}},
			[]string{"srv/ 5 755 1000:1000", "srv/lib/ 5 755 1000:1000", "srv/lib/x.go 0 640 1000:1000 x", "srv/link 2 777 1000:1000 -> main.go", "srv/main.go 0 640 1000:1000 main"}, ""},
		"wildcard and chmod": {CopySpec{Sources: []string{"*.txt"}, Dest: "/w/", Mode: &mode},
			[]string{"w/ 5 755 0:0", "w/a.txt 0 600 0:0 A", "w/b.txt 0 600 0:0 B"}, ""},
		"two sources need a dir":      {CopySpec{Sources: []string{"a.txt", "b.txt"}, Dest: "/w"}, nil, "must be a directory"},
		"missing source":              {CopySpec{Sources: []string{"nope"}, Dest: "/w/"}, nil, "not found in the build context"},
		"top symlink followed inside": {CopySpec{Sources: []string{"top-link"}, Dest: "/t/"}, []string{"t/ 5 755 0:0", "t/top-link 0 640 0:0 A"}, ""},
		"parents": {CopySpec{Sources: []string{"app/lib/x.go"}, Dest: "/p/", Parents: true},
			[]string{"p/ 5 755 0:0", "p/app/ 5 755 0:0", "p/app/lib/ 5 755 0:0", "p/app/lib/x.go 0 640 0:0 x"}, ""},
		"empty dir": {CopySpec{Sources: []string{"empty"}, Dest: "/e"}, []string{"e/ 5 755 0:0"}, ""},
		"inline":    {CopySpec{Inline: []File{{Name: "EOF", Data: "hi\n"}}, Dest: "/etc/greeting"}, []string{"etc/greeting 0 644 0:0 hi\n"}, ""},
		"add extracts": {CopySpec{Sources: []string{"bundle.tgz"}, Dest: "/x/", Unpack: true},
			[]string{"x/ 5 755 0:0", "x/pkg/ 5 755 0:0", "x/pkg/f 0 644 7:0 F", "x/pkg/hl 1 644 0:0 -> x/pkg/f"}, ""},
		"add without unpack copies": {CopySpec{Sources: []string{"bundle.tgz"}, Dest: "/x/"}, nil, ""},
		"add refuses climbing":      {CopySpec{Sources: []string{"evil.tar"}, Dest: "/x/", Unpack: true}, nil, "leaves the destination"},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := copyLayer(t, src, tc.spec, lower)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if len(got) != 2 || !strings.HasPrefix(got[1], "x/bundle.tgz 0 640") {
					t.Errorf("got %q", got)
				}
				return
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("layer:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestChecksum(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("one"), 0o644)
	r, _ := buildctx.OpenRoot(dir)
	defer r.Close()
	spec := CopySpec{Sources: []string{"."}, Dest: "/"}
	sum := func() string {
		s, err := Checksum(r, spec)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a := sum()
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(dir, "f"), old, old)
	if b := sum(); b != a {
		t.Error("an mtime change changed the checksum")
	}
	os.WriteFile(filepath.Join(dir, "f"), []byte("two"), 0o644)
	if c := sum(); c == a {
		t.Error("a content change kept the checksum")
	}
	os.Chmod(filepath.Join(dir, "f"), 0o755)
	d := sum()
	os.Chmod(filepath.Join(dir, "f"), 0o644)
	if d == sum() {
		t.Error("a mode change kept the checksum")
	}
}

func TestWriteReproducible(t *testing.T) {
	epoch := time.Unix(1700000000, 0)
	fill := func(mt time.Time) func(*TarWriter) error {
		return func(w *TarWriter) error {
			w.WriteHeader(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1, ModTime: mt, Uname: "me", AccessTime: mt})
			_, err := w.Write([]byte("x"))
			return err
		}
	}
	sink := &memSink{}
	a, _ := Write(context.Background(), sink, "l", Normalizer{Epoch: &epoch}, fill(time.Now()))
	b, _ := Write(context.Background(), sink, "l", Normalizer{Epoch: &epoch}, fill(time.Now().Add(time.Minute)))
	if a.Digest != b.Digest || a.DiffID != b.DiffID {
		t.Errorf("digests differ: %v %v", a, b)
	}
	c, _ := Write(context.Background(), sink, "l", Normalizer{}, fill(time.Now().Add(time.Hour)))
	if c.Digest == a.Digest {
		t.Error("without an epoch the mtime should count")
	}
	zr, _ := gzip.NewReader(bytes.NewReader(sink.blobs[a.Digest]))
	raw, _ := io.ReadAll(zr)
	if s := sha256.Sum256(raw); hex.EncodeToString(s[:]) != a.DiffID.Hex {
		t.Error("diff id is not the uncompressed digest")
	}
	h, _ := tar.NewReader(bytes.NewReader(raw)).Next()
	if !h.ModTime.Equal(epoch) || h.Uname != "" {
		t.Errorf("header not normalized: %+v", h)
	}
}
