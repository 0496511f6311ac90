package initd

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/guest"
)

// OCI whiteouts and their overlayfs forms.
const (
	ociWhiteout    = ".wh."
	ociOpaque      = ".wh..wh..opq"
	overlayOpaque  = "trusted.overlay.opaque"
	overlayXattrNS = "trusted.overlay."
)

// WriteTree writes the tree at dir as a tree stream (guest.TreeWriter) to
// w. With whiteouts, dir is an overlayfs upper directory and its
// whiteouts become OCI ones: a 0/0 character device becomes
// ".wh.<name>", an opaque directory (trusted.overlay.opaque=y) gets a
// ".wh..wh..opq" entry; overlayfs's own xattrs are never copied. Entries
// are sorted, parents first; hardlinks within dir stay hardlinks.
func WriteTree(dir string, w io.Writer, whiteouts bool) error {
	tw := newTreeEntries(w, whiteouts)
	err := walkSorted(dir, "", func(rel string, fi fs.FileInfo) error {
		return tw.add(filepath.Join(dir, rel), rel)
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// treeEntries writes files as tree stream entries, keeping hardlinks.
type treeEntries struct {
	*guest.TreeWriter
	whiteouts bool
	links     map[[2]uint64]string
	buf       []byte
}

func newTreeEntries(w io.Writer, whiteouts bool) *treeEntries {
	return &treeEntries{TreeWriter: guest.NewTreeWriter(w), whiteouts: whiteouts, links: map[[2]uint64]string{}, buf: make([]byte, 256<<10)}
}

// add writes the file at full as the entry rel (and its content).
func (tw *treeEntries) add(full, rel string) error {
	whiteouts, links, buf := tw.whiteouts, tw.links, tw.buf
	var st unix.Stat_t
	if err := unix.Lstat(full, &st); err != nil {
		return err
	}
	mtime := time.Unix(st.Mtim.Sec, st.Mtim.Nsec).UnixNano()
	if whiteouts && st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
		d, base := path.Split(rel)
		return tw.WriteEntry(&guest.TreeEntry{Type: guest.TreeReg, Name: d + ociWhiteout + base, MtimeNS: mtime})
	}
	e := &guest.TreeEntry{Name: rel, Mode: int64(st.Mode & 0o7777), UID: int(st.Uid), GID: int(st.Gid), MtimeNS: mtime}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		e.Type = guest.TreeDir
	case unix.S_IFREG:
		e.Type, e.Size = guest.TreeReg, st.Size
		if st.Nlink > 1 {
			key := [2]uint64{st.Dev, st.Ino}
			if first, ok := links[key]; ok {
				e.Type, e.Link, e.Size = guest.TreeLink, first, 0
			} else {
				links[key] = rel
			}
		}
	case unix.S_IFLNK:
		l, err := os.Readlink(full)
		if err != nil {
			return err
		}
		e.Type, e.Link = guest.TreeSymlink, l
	case unix.S_IFCHR, unix.S_IFBLK:
		e.Type = guest.TreeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			e.Type = guest.TreeBlock
		}
		e.Major, e.Minor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		e.Type = guest.TreeFifo
	default:
		return nil // sockets are not part of a layer
	}
	opaque := false
	for name, val := range xattrs(full) {
		if strings.HasPrefix(name, overlayXattrNS) {
			opaque = opaque || name == overlayOpaque && val == "y"
			continue
		}
		if e.Xattrs == nil {
			e.Xattrs = map[string]string{}
		}
		e.Xattrs[name] = val
	}
	if err := tw.WriteEntry(e); err != nil {
		return err
	}
	if whiteouts && opaque && e.Type == guest.TreeDir {
		if err := tw.WriteEntry(&guest.TreeEntry{Type: guest.TreeReg, Name: rel + "/" + ociOpaque, MtimeNS: mtime}); err != nil {
			return err
		}
	}
	if e.Type == guest.TreeReg && e.Size > 0 {
		f, err := os.Open(full)
		if err != nil {
			return err
		}
		n, err := io.CopyBuffer(tw, io.LimitReader(f, e.Size), buf)
		f.Close()
		if err == nil && n != e.Size {
			err = fmt.Errorf("%s: changed size while being read", rel)
		}
		return err
	}
	return nil
}

// walkSorted calls fn for every entry under dir/rel (not rel itself), in
// lexical order, parents before children, without following symlinks.
func walkSorted(dir, rel string, fn func(rel string, fi fs.FileInfo) error) error {
	f, err := os.Open(filepath.Join(dir, rel))
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, n := range names {
		child := n
		if rel != "" {
			child = rel + "/" + n
		}
		fi, err := os.Lstat(filepath.Join(dir, child))
		if err != nil {
			return err
		}
		if err := fn(child, fi); err != nil {
			return err
		}
		if fi.IsDir() {
			if err := walkSorted(dir, child, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// xattrs lists p's extended attributes (without following a symlink).
func xattrs(p string) map[string]string {
	sz, err := unix.Llistxattr(p, nil)
	if err != nil || sz <= 0 {
		return nil
	}
	buf := make([]byte, sz)
	if sz, err = unix.Llistxattr(p, buf); err != nil {
		return nil
	}
	out := map[string]string{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		vsz, err := unix.Lgetxattr(p, name, nil)
		if err != nil || vsz < 0 {
			continue
		}
		val := make([]byte, vsz)
		if vsz, err = unix.Lgetxattr(p, name, val); err != nil {
			continue
		}
		out[name] = string(val[:vsz])
	}
	return out
}

// ReadTree extracts the tree stream r into the directory dir (created if
// missing). With whiteouts, OCI whiteouts become overlayfs ones, so dir
// can be an overlayfs lower. Names that climb out of dir, and parents
// that are not directories (a symlink among them), are refused.
func ReadTree(r io.Reader, dir string, whiteouts bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	type dirTime struct {
		p string
		t int64
	}
	var dirs []dirTime
	tr := guest.NewTreeReader(r)
	buf := make([]byte, 256<<10)
	for {
		e, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		for _, c := range strings.Split(e.Name, "/") {
			if c == ".." {
				return fmt.Errorf("entry %q leaves the directory", e.Name)
			}
		}
		comps := splitPath(e.Name)
		if len(comps) == 0 {
			continue
		}
		parent := dir
		for _, c := range comps[:len(comps)-1] {
			parent = filepath.Join(parent, c)
			fi, err := os.Lstat(parent)
			if errors.Is(err, os.ErrNotExist) {
				if err := os.Mkdir(parent, 0o755); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return err
			}
			if !fi.IsDir() {
				return fmt.Errorf("entry %q: %s is not a directory", e.Name, c)
			}
		}
		base := comps[len(comps)-1]
		target := filepath.Join(parent, base)
		if whiteouts && base == ociOpaque {
			if err := unix.Lsetxattr(parent, overlayOpaque, []byte("y"), 0); err != nil {
				return fmt.Errorf("opaque %s: %w", parent, err)
			}
			continue
		}
		if whiteouts && strings.HasPrefix(base, ociWhiteout) {
			gone := filepath.Join(parent, strings.TrimPrefix(base, ociWhiteout))
			_ = os.RemoveAll(gone)
			if err := unix.Mknod(gone, unix.S_IFCHR, 0); err != nil {
				return fmt.Errorf("whiteout %s: %w", gone, err)
			}
			continue
		}
		if fi, err := os.Lstat(target); err == nil && !(fi.IsDir() && e.Type == guest.TreeDir) {
			if err := os.RemoveAll(target); err != nil {
				return err
			}
		}
		mode := uint32(e.Mode & 0o7777)
		switch e.Type {
		case guest.TreeDir:
			if err := os.Mkdir(target, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return err
			}
			dirs = append(dirs, dirTime{target, e.MtimeNS})
		case guest.TreeReg:
			f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
			if err != nil {
				return err
			}
			_, err = io.CopyBuffer(f, tr, buf)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case guest.TreeLink:
			for _, c := range strings.Split(e.Link, "/") {
				if c == ".." {
					return fmt.Errorf("hardlink %q leaves the directory", e.Link)
				}
			}
			if err := os.Link(filepath.Join(append([]string{dir}, splitPath(e.Link)...)...), target); err != nil {
				return err
			}
			continue // a hardlink shares its target's metadata
		case guest.TreeSymlink:
			if err := os.Symlink(e.Link, target); err != nil {
				return err
			}
		case guest.TreeChar, guest.TreeBlock, guest.TreeFifo:
			m := uint32(unix.S_IFIFO)
			switch e.Type {
			case guest.TreeChar:
				m = unix.S_IFCHR
			case guest.TreeBlock:
				m = unix.S_IFBLK
			}
			if err := unix.Mknod(target, m|mode, int(unix.Mkdev(uint32(e.Major), uint32(e.Minor)))); err != nil {
				return err
			}
		default:
			continue
		}
		if err := os.Lchown(target, e.UID, e.GID); err != nil {
			return err
		}
		if e.Type != guest.TreeSymlink {
			if err := unix.Fchmodat(unix.AT_FDCWD, target, mode, 0); err != nil {
				return err
			}
		}
		for name, v := range e.Xattrs {
			if !strings.HasPrefix(name, overlayXattrNS) {
				_ = unix.Lsetxattr(target, name, []byte(v), 0)
			}
		}
		if e.Type != guest.TreeDir {
			setMtime(target, e.MtimeNS)
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		setMtime(dirs[i].p, dirs[i].t)
	}
	return nil
}

func setMtime(p string, ns int64) {
	ts := []unix.Timespec{unix.NsecToTimespec(ns), unix.NsecToTimespec(ns)}
	_ = unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}
