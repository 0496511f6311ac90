package apply

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// spooledEntry is a validated entry of one layer; regular files point at
// their content in the layer's spool file.
type spooledEntry struct {
	name string
	op   op
	data *section // regular files only
}

// spooledLayer is one layer decompressed, verified and indexed.
type spooledLayer struct {
	info    layerInfo
	entries []spooledEntry
	spool   *spool
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
	fs, layers, stats, err := buildTree(ctx, img, o)
	defer func() {
		for _, l := range layers {
			if l != nil && l.spool != nil {
				_ = l.spool.Close()
			}
		}
	}()
	if err != nil {
		return stats, err
	}
	n, bytes, err := writeTree(ctx, fs, w)
	stats.Entries, stats.FileBytes = n, bytes
	return stats, err
}

// buildTree decompresses and indexes every layer (in parallel), then
// replays them in order into a memfs.
func buildTree(ctx context.Context, img v1.Image, o options) (*memfs, []*spooledLayer, Stats, error) {
	infos, err := layersOf(img)
	if err != nil {
		return nil, nil, Stats{}, err
	}
	lim := newLimits(o)
	layers := make([]*spooledLayer, len(infos))
	errs := make([]error, len(infos))
	sem := make(chan struct{}, o.parallelism)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i, li := range infos {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			layers[i], errs[i] = spoolLayer(ctx, li, lim, o.spoolDir)
			if errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	if err := firstError(errs); err != nil {
		return nil, layers, Stats{}, err
	}
	stats := Stats{Layers: len(infos), StreamBytes: o.maxSize - lim.stream.left.Load()}
	fs := newMemfs()
	for _, l := range layers {
		st := newLayerState()
		for _, e := range l.entries {
			var data io.Reader
			if e.data != nil {
				data = &sectionReader{io.NewSectionReader(e.data.s, e.data.off, e.data.n), *e.data}
			}
			if err := applyOp(fs, st, e.op, data); err != nil {
				return nil, layers, stats, &EntryError{Layer: l.info.name, Entry: e.name, Err: err}
			}
		}
	}
	return fs, layers, stats, nil
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
// content into an unlinked spool file, and verifies the diff_id.
func spoolLayer(ctx context.Context, li layerInfo, lim *limits, dir string) (*spooledLayer, error) {
	vs, err := openLayer(li, lim)
	if err != nil {
		return nil, err
	}
	defer func() { _ = vs.Close() }()
	spool := &spool{dir: dir, budget: lim.spoolMem}
	l := &spooledLayer{info: li, spool: spool}
	fail := func(err error) (*spooledLayer, error) {
		_ = spool.Close()
		return nil, err
	}
	tr := tar.NewReader(vs)
	for {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fail(fmt.Errorf("layer %s: read tar: %w", li.name, err))
		}
		if err := lim.entries.take(1, lim.o.maxEntries); err != nil {
			return fail(&EntryError{Layer: li.name, Entry: hdr.Name, Err: err})
		}
		o, err := parseEntry(hdr)
		if err != nil {
			return fail(&EntryError{Layer: li.name, Entry: hdr.Name, Err: err})
		}
		e := spooledEntry{name: hdr.Name, op: o}
		if o.kind == opFile {
			if err := lim.logical.take(o.size, lim.o.maxSize); err != nil {
				return fail(&EntryError{Layer: li.name, Entry: hdr.Name, Err: err})
			}
			off := spool.size
			n, err := spool.ReadFrom(tr)
			if err != nil {
				return fail(&EntryError{Layer: li.name, Entry: hdr.Name, Err: fmt.Errorf("read content: %w", err)})
			}
			if n != o.size {
				return fail(&EntryError{Layer: li.name, Entry: hdr.Name, Err: invalid("content is %d bytes, header says %d", n, o.size)})
			}
			e.data = &section{spool, off, n}
		}
		l.entries = append(l.entries, e)
	}
	if err := vs.verify(); err != nil {
		return fail(err)
	}
	return l, nil
}
