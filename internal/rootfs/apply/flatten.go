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

// buildTree decompresses and indexes every layer (o.parallelism at a
// time), then replays them in order into a memfs.
func buildTree(ctx context.Context, img v1.Image, o options) (*memfs, []*spooledLayer, Stats, error) {
	infos, err := layersOf(img, o.lim.MaxLayers)
	if err != nil {
		return nil, nil, Stats{}, err
	}
	lim := newLimits(o)
	layers := make([]*spooledLayer, len(infos))
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
				if errs[i] = ctx.Err(); errs[i] != nil {
					continue
				}
				layers[i], errs[i] = spoolLayer(ctx, infos[i], lim, o.spoolDir)
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
	if err := firstError(errs); err != nil {
		return nil, layers, Stats{}, err
	}
	stats := Stats{Layers: len(infos), StreamBytes: lim.stream.used()}
	fs := newMemfs(lim.MaxDepth)
	for i, l := range layers {
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
		_ = fs.endLayer()
		layers[i].entries = nil
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
// content into the layer's spool (zero blocks become holes), and verifies
// the diff_id.
func spoolLayer(ctx context.Context, li layerInfo, lim *limits, dir string) (*spooledLayer, error) {
	vs, err := openLayer(li, lim)
	if err != nil {
		return nil, err
	}
	defer func() { _ = vs.Close() }()
	spool := &spool{dir: dir, budget: lim.spoolMem, minFree: lim.MinFree}
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
			return fail(vs.readErr(err))
		}
		o, err := lim.admit(li, hdr)
		if err != nil {
			return fail(err)
		}
		e := spooledEntry{name: hdr.Name, op: o}
		if o.kind == opFile {
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
