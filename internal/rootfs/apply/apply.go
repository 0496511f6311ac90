package apply

import "io"

// backend is a file tree the layer semantics are applied to. Paths are
// cleaned components inside the root. Every method resolves the parent
// path in-root (symlinks followed, ".." stopping at the root) and never
// follows the final component. Creating methods make missing parents
// (0755, root-owned) and replace whatever is at the final component; a
// directory over a directory only updates its metadata.
type backend interface {
	removeAll(p []string) error
	// clearDir removes everything below dir p except what keep (the
	// layer's entries below p, nil for none) holds; kept directories are
	// cleared recursively. A directory cleared once in a layer is not
	// cleared again in that layer (everything in it since is the layer's).
	clearDir(p []string, keep *kept) error
	mkdir(p []string, m meta) error
	create(p []string, m meta, size int64, data io.Reader) error
	symlink(p []string, target string, m meta) error
	link(p, target []string) error
	mknod(p []string, typ byte, m meta) error
	// endLayer runs after the last entry of a layer (directory mtimes).
	endLayer() error
}

// kept is a trie of the paths the current layer has written, so an
// opaque marker keeps same-layer entries that came before it. Marking
// and looking up cost one step per component, whatever the depth.
type kept struct {
	kids map[string]*kept
}

// child returns the trie below name, nil when the layer wrote nothing
// there (nil-safe).
func (k *kept) child(name string) *kept {
	if k == nil {
		return nil
	}
	return k.kids[name]
}

// layerState tracks what the current layer has created.
type layerState struct {
	seen kept
}

func newLayerState() *layerState { return &layerState{} }

func (st *layerState) mark(p []string) {
	k := &st.seen
	for _, c := range p {
		next := k.kids[c]
		if next == nil {
			if k.kids == nil {
				k.kids = map[string]*kept{}
			}
			next = &kept{}
			k.kids[c] = next
		}
		k = next
	}
}

// below returns the trie of what the layer wrote below p (nil for nothing).
func (st *layerState) below(p []string) *kept {
	k := &st.seen
	for _, c := range p {
		if k = k.child(c); k == nil {
			return nil
		}
	}
	return k
}

// applyOp applies one validated entry; data is the file content of opFile.
func applyOp(b backend, st *layerState, o op, data io.Reader) error {
	switch o.kind {
	case opWhiteout:
		return b.removeAll(o.path)
	case opOpaque:
		return b.clearDir(o.path, st.below(o.path))
	}
	st.mark(o.path)
	switch o.kind {
	case opDir:
		return b.mkdir(o.path, o.meta)
	case opFile:
		return b.create(o.path, o.meta, o.size, data)
	case opSymlink:
		return b.symlink(o.path, o.linkname, o.meta)
	case opLink:
		return b.link(o.path, o.link)
	case opNode:
		return b.mknod(o.path, o.typ, o.meta)
	}
	return nil
}
