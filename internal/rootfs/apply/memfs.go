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
	root     *node
	maxDepth int
	cleared  map[*node]struct{} // directories an opaque marker cleared in this layer
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
	at       where            // the node's resolved path
}

func newMemfs(maxDepth int) *memfs {
	root := &node{ino: &inode{typ: tar.TypeDir, meta: meta{mode: 0o755}}, children: map[string]*node{}}
	return &memfs{root: root, maxDepth: maxDepth, cleared: map[*node]struct{}{}}
}

func newDirNode(parent *node, at where, m meta) *node {
	return &node{ino: &inode{typ: tar.TypeDir, meta: m}, parent: parent, children: map[string]*node{}, at: at}
}

// walkDir resolves p as a directory in-root, following symlinks. With
// create, missing components become directories; otherwise a missing one
// returns (nil, nil).
func (fs *memfs) walkDir(p []string, create bool) (*node, error) {
	cur := fs.root
	rest := append([]string(nil), p...)
	follows, steps := 0, 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		if steps++; steps > maxWalkSteps {
			return nil, errWalk
		}
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
			at := cur.at.child(c)
			if err := at.check(fs.maxDepth); err != nil {
				return nil, err
			}
			child = newDirNode(cur, at, meta{mode: 0o755})
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

func (fs *memfs) clearDir(p []string, keep *kept) error {
	dir, err := fs.walkDir(p, false)
	if err != nil || dir == nil {
		return err
	}
	fs.clearNode(dir, keep)
	return nil
}

func (fs *memfs) clearNode(dir *node, keep *kept) {
	if _, ok := fs.cleared[dir]; ok {
		return
	}
	fs.cleared[dir] = struct{}{}
	for name, child := range dir.children {
		k := keep.child(name)
		if k == nil {
			delete(dir.children, name)
			continue
		}
		if child.children != nil {
			fs.clearNode(child, k)
		}
	}
}

// newChild resolves p's parent (creating missing directories) and checks
// the resolved path of p against the limits.
func (fs *memfs) newChild(p []string) (*node, string, where, error) {
	dir, name, err := fs.parentOf(p, true)
	if err != nil {
		return nil, "", where{}, err
	}
	at := dir.at.child(name)
	return dir, name, at, at.check(fs.maxDepth)
}

// put replaces whatever is at p with n (directories over directories
// are handled by mkdir before this).
func (fs *memfs) put(p []string, n *node) error {
	dir, name, at, err := fs.newChild(p)
	if err != nil {
		return err
	}
	n.parent, n.at = dir, at
	dir.children[name] = n
	return nil
}

func (fs *memfs) mkdir(p []string, m meta) error {
	if len(p) == 0 {
		fs.root.ino.meta = m
		return nil
	}
	dir, name, at, err := fs.newChild(p)
	if err != nil {
		return err
	}
	if old := dir.children[name]; old != nil && old.ino.typ == tar.TypeDir {
		old.ino.meta = m
		return nil
	}
	dir.children[name] = newDirNode(dir, at, m)
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
	dir, name, at, err := fs.newChild(p)
	if err != nil {
		return err
	}
	if old := dir.children[name]; old != nil && old.ino == t.ino {
		return nil
	}
	dir.children[name] = &node{ino: t.ino, parent: dir, at: at}
	return nil
}

func (fs *memfs) endLayer() error {
	clear(fs.cleared)
	return nil
}

var _ backend = (*memfs)(nil)
