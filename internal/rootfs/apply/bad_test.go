package apply_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/rootfs/apply"
	ti "github.com/ferryvm/ferry/internal/rootfs/rootfstest"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// sandbox is a target directory with a sentinel directory beside it that
// no layer may touch.
type sandbox struct {
	root, sentinel string
	before         ti.Tree
}

func newSandbox(t testing.TB) *sandbox {
	t.Helper()
	tmp := t.TempDir()
	s := &sandbox{root: filepath.Join(tmp, "root"), sentinel: filepath.Join(tmp, "sentinel")}
	for _, d := range []string{s.root, filepath.Join(s.sentinel, "sub")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.sentinel, "secret"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("secret", filepath.Join(s.sentinel, "link")); err != nil {
		t.Fatal(err)
	}
	s.before = ti.ListDir(t, s.sentinel)
	return s
}

// expand replaces @S@ with the sentinel's absolute path.
func (s *sandbox) expand(ents []ti.E) []ti.E {
	out := make([]ti.E, len(ents))
	for i, e := range ents {
		e.Name = strings.ReplaceAll(e.Name, "@S@", s.sentinel)
		e.Link = strings.ReplaceAll(e.Link, "@S@", s.sentinel)
		out[i] = e
	}
	return out
}

func (s *sandbox) check(t testing.TB) {
	t.Helper()
	if d := ti.Diff(s.before, ti.ListDir(t, s.sentinel)); len(d) > 0 {
		t.Fatalf("sentinel changed:\n%s", strings.Join(d, "\n"))
	}
	var st os_stat
	if err := stat(filepath.Join(s.sentinel, "secret"), &st); err == nil && st.nlink != 1 {
		t.Fatalf("sentinel secret gained a hardlink (nlink %d)", st.nlink)
	}
}

type badCase struct {
	name    string
	layers  [][]ti.E
	raw     [][]byte                      // uncompressed tar layers after layers
	image   func(t testing.TB) []v1.Layer // generated layers (bombs) instead of both
	opts    []apply.Option
	wantErr string // substring of the error; "" means the tree must apply (in-root)
	entry   string // entry the error must name
	noLayer bool   // an image-level error, naming no layer
	check   func(t *testing.T, root, sentinel string)
}

func badCases() []badCase {
	sec := "@S@/secret"
	return []badCase{
		{name: "dotdot", layers: [][]ti.E{{ti.File("../sentinel/evil", "x")}}, wantErr: `".."`, entry: "../sentinel/evil"},
		{name: "dotdot-inside", layers: [][]ti.E{{ti.File("a/../../sentinel/evil", "x")}}, wantErr: `".."`, entry: "a/../../sentinel/evil"},
		{name: "absolute-name-is-in-root", layers: [][]ti.E{{ti.File("@S@/secret", "pwned")}},
			check: wantFile("@S@/secret", "pwned")},
		{name: "name-dot-file", layers: [][]ti.E{{ti.File(".", "x")}}, wantErr: "non-directory entry for the root", entry: "."},
		{name: "name-dotdot", layers: [][]ti.E{{ti.Dir("../")}}, wantErr: `".."`, entry: "../"},
		{name: "name-slash-symlink", layers: [][]ti.E{{ti.Symlink("/", "@S@")}}, wantErr: "non-directory entry for the root", entry: "/"},
		{name: "name-dot-dir-sets-root-meta", layers: [][]ti.E{{{Name: "./", Type: tar.TypeDir, Mode: 0o700}}},
			check: wantMode(".", 0o700)},
		{name: "symlink-then-write-same-layer-relative", layers: [][]ti.E{{ti.Symlink("esc", "../sentinel"), ti.File("esc/secret", "pwned")}},
			check: wantFile("sentinel/secret", "pwned")},
		{name: "symlink-then-write-later-layer-absolute", layers: [][]ti.E{{ti.Symlink("esc", "@S@")}, {ti.File("esc/secret", "pwned")}},
			check: wantFile("@S@/secret", "pwned")},
		{name: "symlink-chain-dotdot", layers: [][]ti.E{{ti.Dir("a/"), ti.Symlink("a/up", "../../../../.."), ti.File("a/up/sentinel/secret", "pwned")}},
			check: wantFile("sentinel/secret", "pwned")},
		{name: "symlink-loop", layers: [][]ti.E{{ti.Symlink("a", "b"), ti.Symlink("b", "a"), ti.File("a/x", "x")}},
			wantErr: "too many levels", entry: "a/x"},
		{name: "hardlink-dotdot", layers: [][]ti.E{{ti.Hardlink("h", "../sentinel/secret")}}, wantErr: `".."`, entry: "h"},
		{name: "hardlink-absolute-is-in-root", layers: [][]ti.E{{ti.Hardlink("h", sec)}}, wantErr: "does not exist", entry: "h"},
		{name: "hardlink-through-symlink", layers: [][]ti.E{{ti.Symlink("esc", "@S@")}, {ti.Hardlink("h", "esc/secret")}},
			wantErr: "does not exist", entry: "h"},
		{name: "hardlink-to-symlink-is-the-symlink", layers: [][]ti.E{{ti.Symlink("esc", "@S@/secret"), ti.Hardlink("h", "esc")}},
			check: wantLink("h", "@S@/secret")},
		{name: "chmod-through-symlink-dir", layers: [][]ti.E{{ti.Symlink("esc", "@S@")}, {{Name: "esc/", Type: tar.TypeDir, Mode: 0o777}}},
			check: wantMode("esc", 0o777)},
		{name: "chown-through-symlink-dir", layers: [][]ti.E{{ti.Symlink("esc", "@S@")}, {{Name: "esc", Type: tar.TypeDir, Mode: 0o755, UID: 4242, GID: 4242}}},
			check: wantMode("esc", 0o755)},
		{name: "chmod-through-symlink-file", layers: [][]ti.E{{ti.Symlink("esc", sec)}, {{Name: "esc", Body: "x", Mode: 0o4777}}},
			check: wantFile("esc", "x")},
		{name: "fifo-over-symlink", layers: [][]ti.E{{ti.Symlink("esc", sec)}, {{Name: "esc", Type: tar.TypeFifo, Mode: 0o666}}}},
		{name: "whiteout-dot", layers: [][]ti.E{{ti.Whiteout("", ".")}}, wantErr: "invalid whiteout", entry: ".wh.."},
		{name: "whiteout-dotdot", layers: [][]ti.E{{ti.Dir("a/"), ti.Whiteout("a/", "..")}}, wantErr: "invalid whiteout", entry: "a/.wh..."},
		{name: "whiteout-of-whiteout", layers: [][]ti.E{{ti.Whiteout("", ".wh.x")}}, wantErr: "invalid whiteout", entry: ".wh..wh.x"},
		{name: "whiteout-under-symlink-absolute", layers: [][]ti.E{{ti.Symlink("esc", "@S@")}, {ti.Whiteout("esc/", "secret"), ti.Whiteout("esc/", "sub")}}},
		{name: "whiteout-under-symlink-relative", layers: [][]ti.E{{ti.Symlink("esc", "../sentinel")}, {ti.Whiteout("esc/", "secret")}}},
		{name: "opaque-under-symlink", layers: [][]ti.E{{ti.Symlink("esc", "@S@")}, {ti.Opaque("esc/")}}},
		{name: "forged-trusted-overlay-xattr", layers: [][]ti.E{{{Name: "d/", Type: tar.TypeDir, Xattrs: map[string]string{"trusted.overlay.opaque": "y"}}}},
			wantErr: "forbidden xattr", entry: "d/"},
		{name: "forged-user-overlay-xattr", layers: [][]ti.E{{{Name: "f", Body: "x", Xattrs: map[string]string{"user.overlay.redirect": "/etc"}}}},
			wantErr: "forbidden xattr", entry: "f"},
		{name: "device-major-out-of-range", layers: [][]ti.E{{{Name: "dev/x", Type: tar.TypeBlock, Major: 4096, Minor: 0}}},
			wantErr: "out of range", entry: "dev/x"},
		{name: "device-minor-out-of-range", layers: [][]ti.E{{{Name: "dev/x", Type: tar.TypeChar, Major: 1, Minor: 1 << 20}}},
			wantErr: "out of range", entry: "dev/x"},
		{name: "duplicate-entries-last-wins", layers: [][]ti.E{{ti.File("f", "one"), ti.File("f", "two"), ti.Dir("d/"), ti.File("d", "file")}},
			check: wantFile("d", "file")},
		{name: "gzip-bomb", layers: [][]ti.E{{ti.File("zeros", strings.Repeat("\x00", 8<<20))}}, opts: []apply.Option{apply.WithMaxSize(1 << 20)},
			wantErr: "exceeds the limit"},
		{name: "huge-sparse-file", layers: [][]ti.E{{{Name: "sparse", Size: 1 << 40}}}, opts: []apply.Option{apply.WithMaxSize(1 << 30)},
			wantErr: "total file size exceeds the limit", entry: "sparse"},
		{name: "too-many-entries", layers: [][]ti.E{{ti.File("a", ""), ti.File("b", ""), ti.File("c", "")}}, opts: []apply.Option{apply.WithMaxEntries(2)},
			wantErr: "number of entries exceeds", entry: "c"},
		{name: "non-dir-parent", layers: [][]ti.E{{ti.File("f", "x"), ti.File("f/g", "y")}}, wantErr: "not a directory", entry: "f/g"},
	}
}

type os_stat struct{ nlink uint64 }

func wantFile(p, body string) func(*testing.T, string, string) {
	return func(t *testing.T, root, sentinel string) {
		t.Helper()
		p = strings.ReplaceAll(p, "@S@", sentinel)
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil || string(b) != body {
			t.Fatalf("%s = %q, %v; want %q", p, b, err, body)
		}
	}
}

func wantMode(p string, mode os.FileMode) func(*testing.T, string, string) {
	return func(t *testing.T, root, sentinel string) {
		t.Helper()
		p = strings.ReplaceAll(p, "@S@", sentinel)
		st, err := os.Lstat(filepath.Join(root, p))
		if err != nil || st.Mode().Perm() != mode || !st.IsDir() {
			t.Fatalf("%s: %v %v; want directory %v", p, st.Mode(), err, mode)
		}
	}
}

func wantLink(p, target string) func(*testing.T, string, string) {
	return func(t *testing.T, root, sentinel string) {
		t.Helper()
		p = strings.ReplaceAll(p, "@S@", sentinel)
		got, err := os.Readlink(filepath.Join(root, p))
		if target = strings.ReplaceAll(target, "@S@", sentinel); err != nil || got != target {
			t.Fatalf("%s -> %q, %v; want %q", p, got, err, target)
		}
	}
}

func imageOf(t testing.TB, s *sandbox, c badCase) v1.Image {
	if c.image != nil {
		return ti.FromLayers(t, c.image(t)...)
	}
	var ls []v1.Layer
	for _, l := range c.layers {
		ls = append(ls, ti.Layer(t, ti.Tar(t, s.expand(l)...), false))
	}
	for _, r := range c.raw {
		ls = append(ls, ti.Uncompressed(t, r))
	}
	return ti.FromLayers(t, ls...)
}

// TestBadInput runs every hostile case through both outputs: the
// directory applier (sentinel beside the target must stay untouched) and
// the flattener (same verdict; same tree when it applies).
func TestBadInput(t *testing.T) {
	prereq.Root(t, "ownership, device nodes and trusted.* xattrs in the applied tree")
	for _, c := range append(badCases(), limitCases(t)...) {
		t.Run(c.name, func(t *testing.T) {
			s := newSandbox(t)
			img := imageOf(t, s, c)
			dirErr := apply.ApplyDir(context.Background(), img, s.root, c.opts...)
			s.check(t)
			var buf bytes.Buffer
			_, flatErr := apply.Flatten(context.Background(), img, &buf, append(c.opts, apply.WithSpoolDir(t.TempDir()))...)
			s.check(t)
			for name, err := range map[string]error{"ApplyDir": dirErr, "Flatten": flatErr} {
				if c.wantErr == "" {
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					continue
				}
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("%s: err = %v, want %q", name, err, c.wantErr)
				}
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Errorf("%s: %v is not invalid argument", name, err)
				}
				if !c.noLayer && !strings.Contains(err.Error(), "layer sha256:") {
					t.Errorf("%s: %v does not name the layer", name, err)
				}
				if msg := err.Error(); strings.Contains(msg, "\n") || len(msg) > 1024 {
					t.Errorf("%s: the error is not one short line (%d bytes): %.300q", name, len(msg), msg)
				}
				var ee *apply.EntryError
				if c.entry != "" && (!errors.As(err, &ee) || ee.Entry != strings.ReplaceAll(c.entry, "@S@", s.sentinel)) {
					t.Errorf("%s: %v does not name entry %q", name, err, c.entry)
				}
			}
			if c.wantErr != "" {
				return
			}
			if c.check != nil {
				c.check(t, s.root, s.sentinel)
			}
			want := ti.ListDir(t, s.root)
			got := ti.ListTar(t, &buf)
			delete(want, ".")
			delete(got, ".")
			if d := ti.Diff(want, got); len(d) > 0 {
				t.Fatalf("flattened tree differs from applied directory:\n%s", strings.Join(d, "\n"))
			}
		})
	}
}

func TestDiffIDMismatch(t *testing.T) {
	s := newSandbox(t)
	img := ti.Image(t, ti.Tar(t, ti.File("a", "x")))
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.RootFS.DiffIDs[0] = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}
	bad, err := mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"ApplyDir": apply.ApplyDir(context.Background(), bad, s.root),
		"Flatten":  func() error { _, err := apply.Flatten(context.Background(), bad, &bytes.Buffer{}); return err }(),
	} {
		if err == nil || !strings.Contains(err.Error(), "does not match diff_id") || !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: err = %v, want diff_id mismatch", name, err)
		}
	}
	s.check(t)
}
