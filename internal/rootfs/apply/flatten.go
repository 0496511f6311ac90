package apply

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// spooledEntry is a validated entry of one layer; regular files point at
// their content in the layer's spool.
type spooledEntry struct {
	name string
	op   op
	data *section // regular files only
}

// Stats describes a flattened tree.
type Stats struct {
	Layers      int
	Entries     int   // entries in the flattened tree (the root included)
	FileBytes   int64 // sum of regular file sizes, hardlinks counted once
	StreamBytes int64 // uncompressed bytes of all layers
}

// Flatten writes img's final file tree to w as one tar stream: no
// whiteouts, parents before children, each hardlink after its target,
// children in name order. It returns what it wrote.
func Flatten(ctx context.Context, img v1.Image, w io.Writer, opts ...Option) (Stats, error) {
	o := newOptions(opts)
	fs, spools, stats, err := buildTree(ctx, img, o)
	defer func() {
		for _, s := range spools {
			_ = s.Close()
		}
	}()
	if err != nil {
		return stats, err
	}
	n, bytes, err := writeTree(ctx, fs, w)
	stats.Entries, stats.FileBytes = n, bytes
	return stats, err
}

// buildTree reads every layer (o.parallelism at a time) into its spool
// and replays the entries in layer order into a memfs as they come.
func buildTree(ctx context.Context, img v1.Image, o options) (*memfs, []*spool, Stats, error) {
	infos, err := layersOf(img, o.lim.MaxLayers)
	if err != nil {
		return nil, nil, Stats{}, err
	}
	lim := newLimits(o)
	fs := newMemfs(lim.MaxDepth)
	rp := newReplayer(fs, infos)
	spools := make([]*spool, len(infos))
	for i := range spools {
		spools[i] = &spool{dir: o.spoolDir, budget: lim.spoolMem, minFree: lim.MinFree}
	}
	errs := make([]error, len(infos))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(o.parallelism, len(infos)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if errs[i] = ctx.Err(); errs[i] == nil {
					errs[i] = spoolLayer(ctx, infos[i], lim, spools[i], func(e spooledEntry) error { return rp.emit(i, e) })
				}
				if errs[i] == nil {
					errs[i] = rp.finish(i)
				}
				if errs[i] != nil {
					cancel()
				}
			}
		}()
	}
	for i := range infos {
		next <- i
	}
	close(next)
	wg.Wait()
	stats := Stats{Layers: len(infos), StreamBytes: lim.stream.used()}
	if err := firstError(errs); err != nil {
		return nil, spools, stats, err
	}
	return fs, spools, stats, nil
}

// firstError prefers a real failure over the cancellations it caused.
func firstError(errs []error) error {
	var cancelled error
	for _, err := range errs {
		if err == nil {
			continue
		}
		if errors.Is(err, context.Canceled) {
			cancelled = err
			continue
		}
		return err
	}
	return cancelled
}

// spoolLayer reads one layer: validates each header, copies regular file
// content into the layer's spool (zero blocks become holes), emits the
// entry, and verifies the diff_id.
func spoolLayer(ctx context.Context, li layerInfo, lim *limits, spool *spool, emit func(spooledEntry) error) error {
	vs, err := openLayer(li, lim)
	if err != nil {
		return err
	}
	defer func() { _ = vs.Close() }()
	tr := tar.NewReader(vs)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return vs.readErr(err)
		}
		o, err := lim.admit(li, hdr)
		if err != nil {
			return err
		}
		if err := spoolXattrs(&o.meta, spool); err != nil {
			return &EntryError{Layer: li.name, Entry: hdr.Name, Err: err}
		}
		e := spooledEntry{name: hdr.Name, op: o}
		if o.kind == opFile {
			off := spool.size
			n, err := spool.ReadFrom(tr)
			if err != nil {
				return vs.entryErr(hdr.Name, fmt.Errorf("read content: %w", err))
			}
			if n != o.size {
				return &EntryError{Layer: li.name, Entry: hdr.Name, Err: invalid("content is %d bytes, header says %d", n, o.size)}
			}
			e.data = &section{spool, off, n}
		}
		if err := emit(e); err != nil {
			return err
		}
	}
	return vs.verify()
}

// spooledXattr is the size from which an xattr value waits for the tree
// to be written in the spool rather than on the heap.
const spooledXattr = 256

// spoolXattrs moves m's large xattr values into the spool.
func spoolXattrs(m *meta, s *spool) error {
	for k, v := range m.xattrs {
		if len(v) < spooledXattr {
			continue
		}
		off := s.size
		if _, err := s.ReadFrom(bytes.NewReader(v)); err != nil {
			return fmt.Errorf("spool xattr %s: %w", k, err)
		}
		if m.spooled == nil {
			m.spooled = map[string]section{}
		}
		m.spooled[k] = section{s, off, int64(len(v))}
		delete(m.xattrs, k)
	}
	return nil
}
