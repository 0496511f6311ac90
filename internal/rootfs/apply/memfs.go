package apply

import (
	"archive/tar"
	"fmt"
	"io"
	"strings"
)

// memfs is the in-memory tree Flatten replays layers into. File contents
// stay in the spool files; the tree holds only where to find them.
type memfs struct {
	root *node
}

// inode is shared by every hard-linked name.
type inode struct {
	typ    byte
	meta   meta
	target string  // symlink target
	data   section // regular file content in a spool
	size   int64
}

// node is one name in the tree.
type node struct {
	ino      *inode
	parent   *node
	children map[string]*node // directories only
}

const maxSymlinkFollows = 40 // as Linux's path walk

func newMemfs() *memfs {
	root := &node{ino: &inode{typ: tar.TypeDir, meta: meta{mode: 0o755}}, children: map[string]*node{}}
	return &memfs{root: root}
}

func newDirNode(parent *node, m meta) *node {
	return &node{ino: &inode{typ: tar.TypeDir, meta: m}, parent: parent, children: map[string]*node{}}
}

// walkDir resolves p as a directory in-root, following symlinks. With
// create, missing components become directories; otherwise a missing one
// returns (nil, nil).
func (fs *memfs) walkDir(p []string, create bool) (*node, error) {
	cur := fs.root
	rest := append([]string(nil), p...)
	follows := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if cur.parent != nil {
				cur = cur.parent
			}
			continue
		}
		child := cur.children[c]
		if child == nil {
			if !create {
				return nil, nil
			}
			child = newDirNode(cur, meta{mode: 0o755})
			cur.children[c] = child
			cur = child
			continue
		}
		switch child.ino.typ {
		case tar.TypeDir:
			cur = child
		case tar.TypeSymlink:
			follows++
			if follows > maxSymlinkFollows {
				return nil, errLoop
			}
			t := child.ino.target
			if strings.HasPrefix(t, "/") {
				cur = fs.root
			}
			rest = append(strings.Split(t, "/"), rest...)
		default:
			if !create {
				return nil, nil
			}
			return nil, errNotDir
		}
	}
	return cur, nil
}

// parentOf resolves the parent of p and returns it with p's last name.
func (fs *memfs) parentOf(p []string, create bool) (*node, string, error) {
	dir, err := fs.walkDir(p[:len(p)-1], create)
	return dir, p[len(p)-1], err
}

func (fs *memfs) removeAll(p []string) error {
	if len(p) == 0 {
		return invalid("whiteout of the root")
	}
	dir, name, err := fs.parentOf(p, false)
	if err != nil || dir == nil {
		return err
	}
	delete(dir.children, name)
	return nil
}

func (fs *memfs) clearDir(p []string, keep func([]string) bool) error {
	dir, err := fs.walkDir(p, false)
	if err != nil || dir == nil {
		return err
	}
	clearNode(dir, p, keep)
	return nil
}

func clearNode(dir *node, rel []string, keep func([]string) bool) {
	for name, child := range dir.children {
		crel := append(append([]string(nil), rel...), name)
		if !keep(crel) {
			delete(dir.children, name)
			continue
		}
		if child.children != nil {
			clearNode(child, crel, keep)
		}
	}
}

// put replaces whatever is at p with n (directories over directories
// are handled by mkdir before this).
func (fs *memfs) put(p []string, n *node) error {
	dir, name, err := fs.parentOf(p, true)
	if err != nil {
		return err
	}
	n.parent = dir
	dir.children[name] = n
	return nil
}

func (fs *memfs) mkdir(p []string, m meta) error {
	if len(p) == 0 {
		fs.root.ino.meta = m
		return nil
	}
	dir, name, err := fs.parentOf(p, true)
	if err != nil {
		return err
	}
	if old := dir.children[name]; old != nil && old.ino.typ == tar.TypeDir {
		old.ino.meta = m
		return nil
	}
	dir.children[name] = newDirNode(dir, m)
	return nil
}

func (fs *memfs) create(p []string, m meta, size int64, data io.Reader) error {
	var sec section
	if sr, ok := data.(*sectionReader); ok {
		sec = sr.sec
	} else if size > 0 {
		return fmt.Errorf("memfs: file data must be a spool section")
	}
	return fs.put(p, &node{ino: &inode{typ: tar.TypeReg, meta: m, data: sec, size: size}})
}

func (fs *memfs) symlink(p []string, target string, m meta) error {
	return fs.put(p, &node{ino: &inode{typ: tar.TypeSymlink, meta: m, target: target}})
}

func (fs *memfs) mknod(p []string, typ byte, m meta) error {
	return fs.put(p, &node{ino: &inode{typ: typ, meta: m}})
}

func (fs *memfs) link(p, target []string) error {
	tdir, tname, err := fs.parentOf(target, false)
	if err != nil {
		return fmt.Errorf("hardlink target %s: %w", joinPath(target), err)
	}
	var t *node
	if tdir != nil {
		t = tdir.children[tname]
	}
	if t == nil {
		return invalid("hardlink target %s does not exist", joinPath(target))
	}
	if t.ino.typ == tar.TypeDir {
		return invalid("hardlink target %s is a directory", joinPath(target))
	}
	dir, name, err := fs.parentOf(p, true)
	if err != nil {
		return err
	}
	if old := dir.children[name]; old != nil && old.ino == t.ino {
		return nil
	}
	dir.children[name] = &node{ino: t.ino, parent: dir}
	return nil
}

func (fs *memfs) endLayer() error { return nil }

var _ backend = (*memfs)(nil)
