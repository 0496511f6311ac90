package apply

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ApplyDir applies img's layers in order to the existing directory dir,
// breakout-safe (see the package doc). On error dir holds a partial tree
// and should be discarded. Run it as root to keep ownership and devices.
func ApplyDir(ctx context.Context, img v1.Image, dir string, opts ...Option) error {
	o := newOptions(opts)
	infos, err := layersOf(img, o.lim.MaxLayers)
	if err != nil {
		return err
	}
	fs, err := newDirfs(dir, o.lim.MaxDepth, o.log)
	if err != nil {
		return err
	}
	defer func() { _ = fs.close() }()
	lim := newLimits(o)
	for _, li := range infos {
		if err := applyLayerDir(ctx, fs, li, lim); err != nil {
			return err
		}
	}
	return nil
}

func applyLayerDir(ctx context.Context, fs *dirfs, li layerInfo, lim *limits) error {
	vs, err := openLayer(li, lim)
	if err != nil {
		return err
	}
	defer func() { _ = vs.Close() }()
	tr := tar.NewReader(vs)
	st := newLayerState()
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
		if err := applyOp(fs, st, o, tr); err != nil {
			return vs.entryErr(hdr.Name, err)
		}
	}
	if err := vs.verify(); err != nil {
		return err
	}
	if err := fs.endLayer(); err != nil {
		return fmt.Errorf("layer %s: %w", li.name, err)
	}
	return nil
}
