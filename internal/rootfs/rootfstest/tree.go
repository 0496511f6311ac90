package rootfstest

import (
	"archive/tar"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Info is what the equivalence oracles compare for each path: type, mode
// (permission and special bits), owner, size, link target, content hash
// and xattrs. Directories have size 0.
type Info struct {
	Type   string // dir, reg, symlink, char, block, fifo
	Mode   uint32
	UID    int
	GID    int
	Size   int64
	Link   string
	Sum    string
	Xattrs string // sorted k=v list
	Dev    string
}

// Tree maps a clean relative path ("." for the root) to its Info.
type Tree map[string]Info

// Diff lists differences between want and got, one per line.
func Diff(want, got Tree) []string {
	var out []string
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			out = append(out, fmt.Sprintf("missing %s (%+v)", p, w))
			continue
		}
		if g != w {
			out = append(out, fmt.Sprintf("differs %s: want %+v got %+v", p, w, g))
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			out = append(out, fmt.Sprintf("extra %s (%+v)", p, g))
		}
	}
	sort.Strings(out)
	return out
}

// ListDir walks dir without following symlinks.
func ListDir(t testing.TB, dir string) Tree {
	t.Helper()
	tree := Tree{}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	defer func() { _ = root.Close() }()
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no stat_t", p)
		}
		in := Info{Mode: uint32(sys.Mode) & 0o7777, UID: int(sys.Uid), GID: int(sys.Gid), Xattrs: xattrsOf(p)}
		switch sys.Mode & syscall.S_IFMT {
		case syscall.S_IFDIR:
			in.Type = "dir"
		case syscall.S_IFREG:
			in.Type, in.Size = "reg", st.Size()
			b, err := root.ReadFile(rel) // the file Lstat saw, not one a symlink swapped in
			if err != nil {
				return err
			}
			in.Sum = fmt.Sprintf("%x", sha256.Sum256(b))
		case syscall.S_IFLNK:
			in.Type, in.Mode = "symlink", 0
			in.Link, _ = os.Readlink(p)
		case syscall.S_IFCHR, syscall.S_IFBLK:
			in.Type = "char"
			if sys.Mode&syscall.S_IFMT == syscall.S_IFBLK {
				in.Type = "block"
			}
			in.Dev = fmt.Sprintf("%d:%d", unix.Major(sys.Rdev), unix.Minor(sys.Rdev))
		case syscall.S_IFIFO:
			in.Type = "fifo"
		default:
			in.Type = "other"
		}
		tree[filepath.ToSlash(rel)] = in
		return nil
	})
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	return tree
}

func xattrsOf(p string) string {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil || n == 0 {
		return ""
	}
	var kv []string
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if strings.HasPrefix(name, "security.selinux") {
			continue
		}
		v := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			continue
		}
		kv = append(kv, name+"="+string(v[:m]))
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

// ListTar reads a flattened tar (no whiteouts) into a Tree; hardlinks
// take their target's Info.
func ListTar(t testing.TB, r io.Reader) Tree {
	t.Helper()
	tree := Tree{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		p := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		if p == "" {
			p = "."
		}
		if h.Typeflag == tar.TypeLink {
			tree[p] = tree[strings.TrimSuffix(strings.TrimPrefix(h.Linkname, "./"), "/")]
			continue
		}
		in := Info{Mode: uint32(h.Mode) & 0o7777, UID: h.Uid, GID: h.Gid}
		var kv []string
		for k, v := range h.PAXRecords {
			if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				kv = append(kv, name+"="+v)
			}
		}
		sort.Strings(kv)
		in.Xattrs = strings.Join(kv, ",")
		switch h.Typeflag {
		case tar.TypeDir:
			in.Type = "dir"
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			in.Type, in.Size, in.Sum = "reg", int64(len(b)), fmt.Sprintf("%x", sha256.Sum256(b))
		case tar.TypeSymlink:
			in.Type, in.Mode, in.Link = "symlink", 0, h.Linkname
		case tar.TypeChar, tar.TypeBlock:
			in.Type = "char"
			if h.Typeflag == tar.TypeBlock {
				in.Type = "block"
			}
			in.Dev = fmt.Sprintf("%d:%d", h.Devmajor, h.Devminor)
		case tar.TypeFifo:
			in.Type = "fifo"
		}
		tree[p] = in
	}
	return tree
}
