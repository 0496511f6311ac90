package image

import (
	"context"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/image/content"
)

// Image returns the cached image ref names (tag, digest reference, ID or ID
// prefix) as a go-containerregistry v1.Image backed by the content store,
// plus its manifest digest. Layers read straight from the store's blobs.
func (s *Store) Image(ctx context.Context, ref string) (v1.Image, v1.Hash, error) {
	var d v1.Hash
	var rec *record
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		if d, _, err = resolve(tx, ref); err != nil {
			return err
		}
		rec, err = getRecord(tx, d)
		return err
	})
	if err != nil {
		return nil, v1.Hash{}, err
	}
	img, err := s.imageByDigest(d, rec)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	return img, d, nil
}

// ImageByDigest returns the image whose manifest digest is d, whether or not
// a name or record points at it (a lease holder may keep a removed image).
func (s *Store) ImageByDigest(ctx context.Context, d v1.Hash) (v1.Image, error) {
	var rec *record
	_ = s.db.View(func(tx *bbolt.Tx) error {
		rec, _ = getRecord(tx, d)
		return nil
	})
	return s.imageByDigest(d, rec)
}

func (s *Store) imageByDigest(d v1.Hash, rec *record) (v1.Image, error) {
	raw, err := s.content.ReadAll(d)
	if err != nil {
		return nil, fmt.Errorf("image %s: manifest: %w", d, err)
	}
	m, mt, err := ParseManifest(raw)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", d, err)
	}
	core := &storedImage{cs: s.content, digest: d, raw: raw, mt: mt, m: m}
	if rec != nil && rec.Origin != "" {
		if repo, err := name.NewRepository(rec.Origin); err == nil {
			core.origin = &repo
		}
	}
	img, err := partial.CompressedToImage(core)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", d, err)
	}
	return img, nil
}

// storedImage is the partial.CompressedImageCore of a cached manifest.
type storedImage struct {
	cs     *content.Store
	digest v1.Hash
	raw    []byte
	mt     types.MediaType
	m      *v1.Manifest
	origin *name.Repository // where it was pulled from, for cross-repo mounts

	progress ProgressFunc // set on push
	ref      string
}

var _ partial.CompressedImageCore = (*storedImage)(nil)

func (i *storedImage) RawManifest() ([]byte, error)        { return i.raw, nil }
func (i *storedImage) MediaType() (types.MediaType, error) { return i.mt, nil }
func (i *storedImage) RawConfigFile() ([]byte, error) {
	b, err := i.cs.ReadAll(i.m.Config.Digest)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", i.m.Config.Digest, err)
	}
	return b, nil
}

func (i *storedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == i.m.Config.Digest {
		return &storedLayer{cs: i.cs, desc: i.m.Config}, nil
	}
	for _, l := range i.m.Layers {
		if l.Digest == h {
			sl := &storedLayer{cs: i.cs, desc: l, progress: i.progress, ref: i.ref}
			return sl, nil
		}
	}
	return nil, fmt.Errorf("layer %s not in image %s: %w", h, i.digest, errdefs.ErrNotFound)
}

// storedLayer is one blob of a cached image.
type storedLayer struct {
	cs       *content.Store
	desc     v1.Descriptor
	progress ProgressFunc
	ref      string
}

func (l *storedLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *storedLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *storedLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l *storedLayer) Compressed() (io.ReadCloser, error) {
	f, err := l.cs.Open(l.desc.Digest)
	if err != nil {
		return nil, err
	}
	if l.progress == nil {
		return f, nil
	}
	return &progressReader{rc: f, ev: Progress{Ref: l.ref, Digest: l.desc.Digest, Kind: "layer", Total: l.desc.Size, State: StatePushing}, fn: l.progress}, nil
}

// progressReader reports bytes read through it.
type progressReader struct {
	rc   io.ReadCloser
	ev   Progress
	fn   ProgressFunc
	last int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.rc.Read(b)
	p.ev.Done += int64(n)
	if p.ev.Done-p.last >= 256<<10 || (err == io.EOF && p.ev.Done != p.last) {
		p.last = p.ev.Done
		p.fn(p.ev)
	}
	return n, err
}

func (p *progressReader) Close() error { return p.rc.Close() }
