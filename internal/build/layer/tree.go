package layer

import (
	"archive/tar"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// OCI whiteout names.
const (
	WhiteoutPrefix = ".wh."
	OpaqueWhiteout = ".wh..wh..opq"
)

// Entry is what a Tree knows about one path.
type Entry struct {
	Type     byte // tar type flag
	Mode     int64
	UID, GID int
	Link     string // symlink target
	Size     int64
}

// IsDir reports whether the entry is a directory.
func (e *Entry) IsDir() bool { return e != nil && e.Type == tar.TypeDir }

// Tree is the merged view of a stack of layers: each path's final entry.
// Paths are root-relative without a leading slash; "" is the root.
type Tree struct {
	ents map[string]*Entry
	// files holds the content of the few small files builds read on the
	// host (/etc/passwd, /etc/group).
	files map[string][]byte
}

// keepContent are the files whose content Tree keeps.
var keepContent = map[string]bool{"etc/passwd": true, "etc/group": true}

// NewTree returns an empty tree (FROM scratch): only the root exists.
func NewTree() *Tree {
	return &Tree{ents: map[string]*Entry{"": {Type: tar.TypeDir, Mode: 0o755}}, files: map[string][]byte{}}
}

// Apply reads one uncompressed layer tar on top of t.
func (t *Tree) Apply(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read layer: %w", err)
		}
		p := clean(h.Name)
		dir, base := path.Split(p)
		dir = strings.TrimSuffix(dir, "/")
		switch {
		case base == OpaqueWhiteout:
			t.removeUnder(dir)
			continue
		case strings.HasPrefix(base, WhiteoutPrefix):
			t.remove(path.Join(dir, strings.TrimPrefix(base, WhiteoutPrefix)))
			continue
		}
		if p == "" {
			continue
		}
		t.mkParents(dir)
		if old := t.ents[p]; old != nil && (old.Type != tar.TypeDir || h.Typeflag != tar.TypeDir) {
			t.remove(p)
		}
		e := &Entry{Type: h.Typeflag, Mode: h.Mode, UID: h.Uid, GID: h.Gid, Link: h.Linkname, Size: h.Size}
		if e.Type == tar.TypeRegA { //nolint:staticcheck // old writers still emit it
			e.Type = tar.TypeReg
		}
		if e.Type == tar.TypeLink {
			if tgt := t.ents[clean(h.Linkname)]; tgt != nil {
				e.Size = tgt.Size
			}
		}
		t.ents[p] = e
		delete(t.files, p)
		if keepContent[p] && e.Type == tar.TypeReg && h.Size < 1<<20 {
			b, err := io.ReadAll(tr)
			if err != nil {
				return fmt.Errorf("read layer: %s: %w", p, err)
			}
			t.files[p] = b
		}
	}
}

func (t *Tree) mkParents(dir string) {
	for d := dir; d != "" && d != "."; d = path.Dir(d) {
		if _, ok := t.ents[d]; ok {
			return
		}
		t.ents[d] = &Entry{Type: tar.TypeDir, Mode: 0o755}
	}
}

func (t *Tree) remove(p string) {
	delete(t.ents, p)
	delete(t.files, p)
	t.removeUnder(p)
}

func (t *Tree) removeUnder(dir string) {
	prefix := dir + "/"
	if dir == "" {
		prefix = ""
	}
	for k := range t.ents {
		if k != "" && k != dir && strings.HasPrefix(k, prefix) {
			delete(t.ents, k)
			delete(t.files, k)
		}
	}
}

// Get returns the entry at p without following symlinks (nil if absent).
func (t *Tree) Get(p string) *Entry { return t.ents[clean(p)] }

// Content returns the content Tree kept for p (etc/passwd, etc/group).
func (t *Tree) Content(p string) []byte { return t.files[clean(p)] }

// Resolve follows symlinks in p inside the tree (as the kernel would in a
// chroot of it) and returns the path it reaches and the entry there (nil
// when it does not exist). A symlink loop is an error.
func (t *Tree) Resolve(p string) (string, *Entry, error) {
	todo := split(clean(p))
	var done []string
	for hops := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		next := strings.Join(append(append([]string(nil), done...), c), "/")
		e := t.ents[next]
		if e == nil {
			return clean(path.Join(append([]string{next}, todo...)...)), nil, nil
		}
		if e.Type != tar.TypeSymlink {
			done = append(done, c)
			continue
		}
		if hops++; hops > 40 {
			return "", nil, fmt.Errorf("%s: too many levels of symbolic links: %w", p, errdefs.ErrInvalidArgument)
		}
		base := "/"
		if !path.IsAbs(e.Link) {
			base += strings.Join(done, "/")
		}
		todo = append(split(clean(path.Join(base, e.Link))), todo...)
		done = nil
	}
	cur := strings.Join(done, "/")
	return cur, t.ents[cur], nil
}

// Paths lists every path, sorted.
func (t *Tree) Paths() []string {
	out := make([]string, 0, len(t.ents))
	for k := range t.ents {
		if k != "" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func clean(p string) string { return strings.TrimPrefix(path.Clean("/"+p), "/") }

func split(p string) []string {
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}
