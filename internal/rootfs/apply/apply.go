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
	// clearDir removes everything below dir p except entries for which
	// keep returns true; kept directories are cleared recursively.
	clearDir(p []string, keep func(rel []string) bool) error
	mkdir(p []string, m meta) error
	create(p []string, m meta, size int64, data io.Reader) error
	symlink(p []string, target string, m meta) error
	link(p, target []string) error
	mknod(p []string, typ byte, m meta) error
	// endLayer runs after the last entry of a layer (directory mtimes).
	endLayer() error
}

// layerState tracks what the current layer has created, so an opaque
// marker keeps same-layer entries that came before it.
type layerState struct {
	seen map[string]struct{}
}

func newLayerState() *layerState { return &layerState{seen: map[string]struct{}{}} }

func (st *layerState) mark(p []string) {
	for i := 1; i <= len(p); i++ {
		st.seen[joinPath(p[:i])] = struct{}{}
	}
}

func (st *layerState) keep(rel []string) bool {
	_, ok := st.seen[joinPath(rel)]
	return ok
}

// applyOp applies one validated entry; data is the file content of opFile.
func applyOp(b backend, st *layerState, o op, data io.Reader) error {
	switch o.kind {
	case opWhiteout:
		return b.removeAll(o.path)
	case opOpaque:
		return b.clearDir(o.path, st.keep)
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
