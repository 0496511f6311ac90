package apply

import (
	"io"
	"sync"
)

// replayer applies spooled entries to the tree in layer order while the
// layers are still being read: the entries of the oldest unfinished
// layer go straight into the tree; a later layer's entries wait until
// every layer before it is applied (they are charged to the metadata
// budget like the tree is). So a one-layer image holds nothing but the
// tree, whatever its size.
type replayer struct {
	mu    sync.Mutex
	fs    *memfs
	infos []layerInfo
	head  int // the oldest layer not yet applied whole
	held  [][]spooledEntry
	done  []bool
	st    []*layerState
}

func newReplayer(fs *memfs, infos []layerInfo) *replayer {
	n := len(infos)
	return &replayer{fs: fs, infos: infos, held: make([][]spooledEntry, n), done: make([]bool, n), st: make([]*layerState, n)}
}

// emit hands over the next entry of layer i.
func (r *replayer) emit(i int, e spooledEntry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i == r.head {
		return r.apply(i, e)
	}
	r.held[i] = append(r.held[i], e)
	return nil
}

// finish marks layer i read whole and applies the layers it held up.
func (r *replayer) finish(i int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done[i] = true
	for r.head < len(r.done) {
		h := r.head
		for _, e := range r.held[h] {
			if err := r.apply(h, e); err != nil {
				return err
			}
		}
		r.held[h] = nil
		if !r.done[h] {
			return nil // h goes on straight into the tree
		}
		_ = r.fs.endLayer()
		r.st[h] = nil
		r.head++
	}
	return nil
}

func (r *replayer) apply(i int, e spooledEntry) error {
	if r.st[i] == nil {
		r.st[i] = newLayerState()
	}
	var data io.Reader
	if e.data != nil {
		data = &sectionReader{io.NewSectionReader(e.data.s, e.data.off, e.data.n), *e.data}
	}
	if err := applyOp(r.fs, r.st[i], e.op, data); err != nil {
		return &EntryError{Layer: r.infos[i].name, Entry: e.name, Err: err}
	}
	return nil
}
