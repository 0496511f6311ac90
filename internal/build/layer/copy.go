package layer

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/moby/patternmatcher"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Source is a tree a COPY reads from; every path resolves inside it
// (buildctx.Root is one).
type Source interface {
	Stat(p string) (fs.FileInfo, error)
	Lstat(p string) (fs.FileInfo, error)
	Open(p string) (*os.File, error)
	ReadDir(p string) ([]string, error)
	Readlink(p string) (string, error)
	Resolve(p string) (string, error)
}

// File is an inline (heredoc) source.
type File struct {
	Name string
	Data string
}

// Owner is a --chown result.
type Owner struct{ UID, GID int }

// CopySpec is one COPY or ADD.
type CopySpec struct {
	Sources []string // paths or patterns in the source, as written
	Inline  []File
	Dest    string // absolute; a trailing "/" means a directory
	Owner   *Owner // nil: root
	Mode    *int64 // --chmod; nil keeps the source's mode
	Exclude []string
	Parents bool
	Unpack  bool // ADD: extract local tar archives
	// Created is the mtime of directories the copy creates and of inline
	// files.
	Created time.Time
}

// ErrSourceMissing is wrapped when a COPY source does not exist.
var ErrSourceMissing = errors.New("not found in the build context")

// item is one matched source: a path in the source tree and where its
// content goes relative to the destination.
type item struct {
	src string // root-relative, symlinks resolved
	rel string // under the destination ("" = the destination itself)
	dir bool
}

// match expands the spec's sources into items.
func match(src Source, spec CopySpec) ([]item, error) {
	var out []item
	for _, pat := range spec.Sources {
		if outside(pat) {
			return nil, fmt.Errorf("%s: forbidden path outside the build context: %w", pat, errdefs.ErrInvalidArgument)
		}
		pat = cleanRel(pat)
		var paths []string
		if hasWildcard(pat) {
			var err error
			if paths, err = glob(src, pat); err != nil {
				return nil, err
			}
		} else {
			paths = []string{pat}
		}
		for _, p := range paths {
			fi, err := src.Stat(p)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil, fmt.Errorf("%q: %w (or excluded by .dockerignore): %w", "/"+p, ErrSourceMissing, errdefs.ErrNotFound)
				}
				return nil, err
			}
			real, err := src.Resolve(p)
			if err != nil {
				return nil, err
			}
			it := item{src: real, dir: fi.IsDir()}
			if spec.Parents {
				it.rel = p
			} else if !it.dir {
				it.rel = path.Base(p)
			}
			out = append(out, it)
		}
	}
	return out, nil
}

// outside reports whether a relative source path climbs above its root
// ("../x"); absolute paths name the root itself.
func outside(p string) bool {
	if path.IsAbs(p) {
		return false
	}
	c := path.Clean(p)
	return c == ".." || strings.HasPrefix(c, "../")
}

func hasWildcard(p string) bool { return strings.ContainsAny(p, "*?[") }

// glob matches pat component by component (path.Match per level).
func glob(src Source, pat string) ([]string, error) {
	cur := []string{""}
	for _, c := range split(pat) {
		var next []string
		for _, d := range cur {
			if !hasWildcard(c) {
				p := join(d, c)
				if _, err := src.Lstat(p); err == nil {
					next = append(next, p)
				}
				continue
			}
			names, err := src.ReadDir(d)
			if err != nil {
				continue // not a directory
			}
			for _, n := range names {
				ok, err := path.Match(c, n)
				if err != nil {
					return nil, fmt.Errorf("pattern %q: %w: %w", pat, err, errdefs.ErrInvalidArgument)
				}
				if ok {
					next = append(next, join(d, n))
				}
			}
		}
		cur = next
	}
	return cur, nil
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "/" + b
}

func cleanRel(p string) string { return clean(p) }

// walker visits a spec's files in a fixed order.
type walker struct {
	src     Source
	spec    CopySpec
	exclude *patternmatcher.PatternMatcher
}

// visit is called for each entry: rel is its path under the destination,
// srcPath its path in the source ("" for inline files).
type visitFunc func(rel, srcPath string, fi fs.FileInfo, inline *File, top, archive bool) error

func newWalker(src Source, spec CopySpec) (*walker, error) {
	w := &walker{src: src, spec: spec}
	if len(spec.Exclude) > 0 {
		pm, err := patternmatcher.New(spec.Exclude)
		if err != nil {
			return nil, fmt.Errorf("--exclude: %w: %w", err, errdefs.ErrInvalidArgument)
		}
		w.exclude = pm
	}
	return w, nil
}

func (w *walker) run(items []item, visit visitFunc) error {
	for _, it := range items {
		if !it.dir {
			fi, err := w.src.Stat(it.src)
			if err != nil {
				return err
			}
			archive := w.spec.Unpack && fi.Mode().IsRegular() && isArchive(w.src, it.src)
			if err := visit(it.rel, it.src, fi, nil, true, archive); err != nil {
				return err
			}
			continue
		}
		fi, err := w.src.Stat(it.src)
		if err != nil {
			return err
		}
		if err := visit(it.rel, it.src, fi, nil, it.rel == "", false); err != nil {
			return err
		}
		if err := w.dir(it.src, it.rel, "", visit); err != nil {
			return err
		}
	}
	for i := range w.spec.Inline {
		f := &w.spec.Inline[i]
		if err := visit(f.Name, "", nil, f, true, false); err != nil {
			return err
		}
	}
	return nil
}

// dir visits the contents of source directory srcDir (excl is the path
// relative to the copied directory, for --exclude).
func (w *walker) dir(srcDir, rel, excl string, visit visitFunc) error {
	names, err := w.src.ReadDir(srcDir)
	if err != nil {
		return err
	}
	for _, n := range names {
		sp, rp, ep := join(srcDir, n), join(rel, n), join(excl, n)
		if w.exclude != nil {
			if m, _ := w.exclude.MatchesOrParentMatches(ep); m { //nolint:staticcheck // small trees; parent results not needed
				continue
			}
		}
		fi, err := w.src.Lstat(sp)
		if err != nil {
			return err
		}
		if !fi.IsDir() && !fi.Mode().IsRegular() && fi.Mode()&fs.ModeSymlink == 0 {
			continue // sockets, devices, fifos
		}
		if err := visit(rp, sp, fi, nil, false, false); err != nil {
			return err
		}
		if fi.IsDir() {
			if err := w.dir(sp, rp, ep, visit); err != nil {
				return err
			}
		}
	}
	return nil
}

// Checksum digests what spec selects from src: each entry's path under
// the destination, type, mode, link target and content (never mtimes or
// owners, which COPY replaces). A missing source is an error.
func Checksum(src Source, spec CopySpec) (string, error) {
	items, err := match(src, spec)
	if err != nil {
		return "", err
	}
	w, err := newWalker(src, spec)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "dest=%s parents=%v unpack=%v\n", spec.Dest, spec.Parents, spec.Unpack)
	buf := make([]byte, 256<<10)
	err = w.run(items, func(rel, sp string, fi fs.FileInfo, inline *File, _, archive bool) error {
		switch {
		case inline != nil:
			fmt.Fprintf(h, "inline %q %x\n", rel, sha256.Sum256([]byte(inline.Data)))
		case fi.Mode()&fs.ModeSymlink != 0:
			l, err := src.Readlink(sp)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "link %q %q\n", rel, l)
		case fi.IsDir():
			fmt.Fprintf(h, "dir %q %o\n", rel, fi.Mode().Perm()|fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
		default:
			d, err := hashFile(src, sp, buf)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "file %q %o %v %s\n", rel, fi.Mode()&^fs.ModeType, archive, d)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func hashFile(src Source, p string, buf []byte) (string, error) {
	f, err := src.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var h hash.Hash = sha256.New()
	if _, err := io.CopyBuffer(h, f, buf); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Copy writes the layer of spec onto w: src's selected files placed at
// the destination as it resolves in lower (the stage's filesystem before
// the copy), with parents created where lower lacks them.
func Copy(w *TarWriter, src Source, spec CopySpec, lower *Tree) error {
	items, err := match(src, spec)
	if err != nil {
		return err
	}
	n := 0
	for _, it := range items {
		if !it.dir || spec.Parents {
			n++
		}
	}
	n += len(spec.Inline)
	destDir := strings.HasSuffix(spec.Dest, "/")
	if _, e, err := lower.Resolve(spec.Dest); err == nil && e.IsDir() {
		destDir = true
	}
	if (n > 1 || len(items) > 1) && !destDir {
		return fmt.Errorf("when using COPY with more than one source file, the destination must be a directory and end with a /: %w", errdefs.ErrInvalidArgument)
	}
	wk, err := newWalker(src, spec)
	if err != nil {
		return err
	}
	c := &copier{w: w, src: src, spec: spec, lower: lower, made: map[string]bool{}, placed: map[string]string{}, buf: make([]byte, 256<<10)}
	dest := clean(spec.Dest)
	return wk.run(items, func(rel, sp string, fi fs.FileInfo, inline *File, top, archive bool) error {
		switch {
		case archive:
			return c.extract(sp, dest)
		case top && inline == nil && fi.IsDir():
			// A directory's contents go into dest: only dest itself must exist.
			rdest, _, err := lower.Resolve(dest)
			if err != nil {
				return err
			}
			return c.mkdirs(rdest)
		case top && !destDir:
			return c.entry(dest, sp, fi, inline)
		}
		return c.entry(join(dest, rel), sp, fi, inline)
	})
}

type copier struct {
	w     *TarWriter
	src   Source
	spec  CopySpec
	lower *Tree
	made  map[string]bool // directories this layer has an entry for
	// placed maps archive entry names to where they were written (for
	// hardlinks inside an archive).
	placed map[string]string
	buf    []byte
}

func (c *copier) owner() (int, int) {
	if c.spec.Owner == nil {
		return 0, 0
	}
	return c.spec.Owner.UID, c.spec.Owner.GID
}

// place resolves p's parent through lower's symlinks and makes sure each
// missing parent has a directory entry; it returns the path to write.
func (c *copier) place(p string) (string, error) {
	dir, base := path.Split(p)
	rdir, e, err := c.lower.Resolve(dir)
	if c.made[rdir] {
		e = nil // made by this copy: a directory
	}
	if err != nil {
		return "", err
	}
	if e != nil && !e.IsDir() {
		return "", fmt.Errorf("cannot copy to %s: /%s is not a directory: %w", "/"+p, rdir, errdefs.ErrInvalidArgument)
	}
	if err := c.mkdirs(rdir); err != nil {
		return "", err
	}
	return join(rdir, base), nil
}

func (c *copier) mkdirs(d string) error {
	if d == "" || c.made[d] || c.lower.Get(d) != nil {
		return nil
	}
	if parent := path.Dir(d); parent != "." {
		if err := c.mkdirs(parent); err != nil {
			return err
		}
	}
	uid, gid := c.owner()
	c.made[d] = true
	return c.w.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, Uid: uid, Gid: gid, ModTime: c.spec.Created})
}

func (c *copier) mode(fi fs.FileInfo) int64 {
	if c.spec.Mode != nil {
		return *c.spec.Mode
	}
	m := int64(fi.Mode().Perm())
	if fi.Mode()&fs.ModeSetuid != 0 {
		m |= 0o4000
	}
	if fi.Mode()&fs.ModeSetgid != 0 {
		m |= 0o2000
	}
	if fi.Mode()&fs.ModeSticky != 0 {
		m |= 0o1000
	}
	return m
}

func (c *copier) entry(out, sp string, fi fs.FileInfo, inline *File) error {
	if out == "" {
		return nil // the root itself: its contents follow
	}
	p, err := c.place(out)
	if err != nil {
		return err
	}
	uid, gid := c.owner()
	h := &tar.Header{Name: p, Uid: uid, Gid: gid}
	switch {
	case inline != nil:
		h.Typeflag, h.Mode, h.Size, h.ModTime = tar.TypeReg, 0o644, int64(len(inline.Data)), c.spec.Created
		if c.spec.Mode != nil {
			h.Mode = *c.spec.Mode
		}
		if err := c.w.WriteHeader(h); err != nil {
			return err
		}
		_, err := io.WriteString(c.w, inline.Data)
		return err
	case fi.Mode()&fs.ModeSymlink != 0:
		l, err := c.src.Readlink(sp)
		if err != nil {
			return err
		}
		h.Typeflag, h.Linkname, h.Mode, h.ModTime = tar.TypeSymlink, l, 0o777, fi.ModTime()
		return c.w.WriteHeader(h)
	case fi.IsDir():
		if e := c.lower.Get(p); e != nil && e.Type == tar.TypeSymlink {
			return nil // a symlink to a directory in lower: files land through it
		}
		if c.made[p] {
			return nil
		}
		c.made[p] = true
		h.Typeflag, h.Name, h.Mode, h.ModTime = tar.TypeDir, p+"/", c.mode(fi), fi.ModTime()
		return c.w.WriteHeader(h)
	default:
		f, err := c.src.Open(sp)
		if err != nil {
			return err
		}
		defer f.Close()
		h.Typeflag, h.Mode, h.Size, h.ModTime = tar.TypeReg, c.mode(fi), fi.Size(), fi.ModTime()
		if err := c.w.WriteHeader(h); err != nil {
			return err
		}
		n, err := io.CopyBuffer(c.w, io.LimitReader(f, h.Size), c.buf)
		if err == nil && n != h.Size {
			err = fmt.Errorf("%s changed size while being copied", sp)
		}
		return err
	}
}
