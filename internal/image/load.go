package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/image/content"
)

// Load imports an OCI image layout tar (ferry save, skopeo oci-archive,
// docker save from Docker 25+) or a legacy `docker save` tarball from r.
// Everything is validated (every blob's digest and size, every manifest,
// every layer's diff ID) before the first image is recorded; a malformed
// tar leaves the cache unchanged. Index entries that are themselves indexes
// resolve to the store's default platform.
func (s *Store) Load(ctx context.Context, r io.Reader) ([]Loaded, error) {
	spool, err := os.CreateTemp(filepath.Join(s.content.Dir(), "ingest"), "load-*")
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	defer func() { _ = os.Remove(spool.Name()) }()
	defer spool.Close()
	if _, err := io.Copy(spool, r); err != nil {
		return nil, fmt.Errorf("load: read archive: %w", content.DiskError(err))
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	arc, err := indexTar(spool)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	l := &loader{s: s, arc: arc, added: map[v1.Hash]bool{}}
	s.gc.RLock()
	out, err := l.load(ctx)
	s.gc.RUnlock()
	if err != nil {
		l.undo()
		return nil, fmt.Errorf("load: %w", err)
	}
	for _, im := range out {
		s.emit(EventLoad, im.ID, "")
	}
	return out, nil
}

// pending is one image of an archive, planned but not yet stored.
type pending struct {
	raw    []byte          // manifest
	digest v1.Hash         // manifest digest
	m      *v1.Manifest    // parsed manifest
	mt     types.MediaType // manifest media type
	names  []string        // canonical references
	// paths maps blob digests to their file in the archive.
	paths map[v1.Hash]string
}

type loader struct {
	s     *Store
	arc   *archive
	added map[v1.Hash]bool
}

func (l *loader) load(ctx context.Context) ([]Loaded, error) {
	var plan []pending
	var err error
	switch {
	case l.arc.has("index.json"):
		plan, err = l.planOCI()
	case l.arc.has("manifest.json"):
		plan, err = l.planDocker()
	default:
		err = fmt.Errorf("neither index.json (OCI layout) nor manifest.json (docker save) in the archive: %w", errMalformed)
	}
	if err != nil {
		return nil, err
	}
	if len(plan) == 0 {
		return nil, fmt.Errorf("the archive holds no image: %w", errMalformed)
	}
	for _, p := range plan {
		if err := l.ingestImage(ctx, p); err != nil {
			return nil, err
		}
	}
	var out []Loaded
	err = l.s.db.Update(func(tx *bbolt.Tx) error {
		for _, p := range plan {
			cfgRaw, err := l.s.content.ReadAll(p.m.Config.Digest)
			if err != nil {
				return err
			}
			rec, err := newRecord(p.m, p.mt, p.raw, cfgRaw)
			if err != nil {
				return err
			}
			if old, err := getRecord(tx, p.digest); err == nil {
				rec.Pulled, rec.Origin = old.Pulled, old.Origin
			}
			if err := putRecord(tx, p.digest, rec); err != nil {
				return err
			}
			for _, n := range p.names {
				if err := tx.Bucket(bucketNames).Put([]byte(n), []byte(p.digest.String())); err != nil {
					return err
				}
			}
			out = append(out, Loaded{ID: p.digest, Refs: p.names})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	l.added = nil
	l.s.syncIndex()
	return out, nil
}

// ingestImage stores config and layers (verifying digests, sizes and diff
// IDs), then the manifest.
func (l *loader) ingestImage(ctx context.Context, p pending) error {
	cfgRaw, err := l.blob(ctx, p, p.m.Config)
	if err != nil {
		return err
	}
	if cfgRaw == nil {
		if cfgRaw, err = l.s.content.ReadAll(p.m.Config.Digest); err != nil {
			return err
		}
	}
	cfg, err := v1.ParseConfigFile(bytesReader(cfgRaw))
	if err != nil {
		return fmt.Errorf("image %s: config %s: %w: %w", p.digest, p.m.Config.Digest, err, errMalformed)
	}
	if len(cfg.RootFS.DiffIDs) != len(p.m.Layers) {
		return fmt.Errorf("image %s: config lists %d diff IDs for %d layers: %w", p.digest, len(cfg.RootFS.DiffIDs), len(p.m.Layers), errMalformed)
	}
	for i, desc := range p.m.Layers {
		if _, err := l.blob(ctx, p, desc); err != nil {
			return err
		}
		if err := l.checkDiffID(desc, cfg.RootFS.DiffIDs[i]); err != nil {
			return fmt.Errorf("image %s: layer %d: %w", p.digest, i, err)
		}
	}
	err = l.s.content.Ingest(ctx, p.digest, int64(len(p.raw)), bytesReader(p.raw))
	switch {
	case err == nil:
		l.added[p.digest] = true
	case !errors.Is(err, errdefs.ErrAlreadyExists):
		return fmt.Errorf("image %s: store manifest: %w", p.digest, err)
	}
	return nil
}

// blob ingests one blob from the archive unless the store has it; for a
// config it returns the bytes it read (nil when the store had it).
func (l *loader) blob(ctx context.Context, p pending, desc v1.Descriptor) ([]byte, error) {
	if l.s.content.Has(desc.Digest) {
		return nil, nil
	}
	name, ok := p.paths[desc.Digest]
	if !ok {
		name = "blobs/" + desc.Digest.Algorithm + "/" + desc.Digest.Hex
	}
	r, size, err := l.arc.open(name)
	if err != nil {
		return nil, fmt.Errorf("image %s: the archive lacks blob %s (incomplete archive): %w", p.digest, desc.Digest, errMalformed)
	}
	if size != desc.Size {
		return nil, fmt.Errorf("image %s: blob %s is %d bytes in the archive, the manifest says %d: %w", p.digest, desc.Digest, size, desc.Size, errMalformed)
	}
	var cfg []byte
	var src io.Reader = r
	if desc.Digest == p.m.Config.Digest {
		if size > MaxManifestSize*4 {
			return nil, fmt.Errorf("image %s: config is %d bytes: %w", p.digest, size, errMalformed)
		}
		if cfg, err = io.ReadAll(r); err != nil {
			return nil, err
		}
		src = bytesReader(cfg)
	}
	err = l.s.content.Ingest(ctx, desc.Digest, desc.Size, src)
	switch {
	case err == nil:
		l.added[desc.Digest] = true
	case errors.Is(err, errdefs.ErrAlreadyExists):
	case errors.Is(err, content.ErrDigestMismatch), errors.Is(err, content.ErrSizeMismatch):
		return nil, fmt.Errorf("image %s: %w (corrupt archive): %w", p.digest, err, errMalformed)
	default:
		return nil, fmt.Errorf("image %s: %w", p.digest, err)
	}
	return cfg, nil
}

// checkDiffID decompresses a stored layer and compares it with its diff ID.
func (l *loader) checkDiffID(desc v1.Descriptor, want v1.Hash) error {
	if desc.Digest == want {
		return nil // uncompressed: the ingest already verified it
	}
	cl, err := partial.CompressedToLayer(&storedLayer{cs: l.s.content, desc: desc})
	if err != nil {
		return err
	}
	rc, err := cl.Uncompressed()
	if err != nil {
		return fmt.Errorf("blob %s: %w: %w", desc.Digest, err, errMalformed)
	}
	defer func() { _ = rc.Close() }()
	got, _, err := v1.SHA256(rc)
	if err != nil {
		return fmt.Errorf("blob %s: decompress: %w: %w", desc.Digest, err, errMalformed)
	}
	if got != want {
		return fmt.Errorf("blob %s decompresses to %s, the config says %s: %w", desc.Digest, got, want, errMalformed)
	}
	return nil
}

// undo removes blobs a failed load committed.
func (l *loader) undo() {
	if len(l.added) == 0 {
		return
	}
	l.s.gc.Lock()
	defer l.s.gc.Unlock()
	if _, err := l.s.gcLocked(context.Background(), l.added, false); err != nil {
		l.s.opts.logger.Warn("load: removing blobs of a failed load", "err", err)
	}
}
