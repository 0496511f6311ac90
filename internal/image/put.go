package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// PutBlob stores r as a blob under the digest it hashes to and holds it
// with lease id (so GC keeps it until RemoveLease), both while GC is held
// off: a blob a build has just made is never collected before it is
// leased. It returns the digest and size.
func (s *Store) PutBlob(ctx context.Context, lease string, r io.Reader) (v1.Hash, int64, error) {
	if lease == "" {
		return v1.Hash{}, 0, fmt.Errorf("put blob: empty lease id: %w", errdefs.ErrInvalidArgument)
	}
	s.gc.RLock()
	defer s.gc.RUnlock()
	d, n, err := s.content.Spool(ctx, r)
	if err != nil {
		return v1.Hash{}, 0, fmt.Errorf("put blob: %w", err)
	}
	if err := s.AddLease(ctx, lease, d); err != nil {
		return v1.Hash{}, 0, fmt.Errorf("put blob: %w", err)
	}
	return d, n, nil
}

// PutImage records an image whose layers are already in the store (put
// there by PutBlob): it stores the config and manifest blobs, then the
// record and the names, in that order, so a crash never lists a partial
// image. Each name is a reference to tag (canonicalized). It returns the
// image as `ferry images` lists it.
func (s *Store) PutImage(ctx context.Context, manifest, config []byte, names []string) (Summary, error) {
	m, mt, err := ParseManifest(manifest)
	if err != nil {
		return Summary{}, fmt.Errorf("put image: %w", err)
	}
	var canon []string
	for _, n := range names {
		r, err := ParseReference(n)
		if err != nil {
			return Summary{}, fmt.Errorf("put image: tag %q: %w", n, err)
		}
		if _, ok := r.(interface{ DigestStr() string }); ok {
			return Summary{}, fmt.Errorf("put image: %s: a tag is needed, not a digest: %w", n, errdefs.ErrInvalidArgument)
		}
		canon = append(canon, Canonical(r))
	}
	s.gc.RLock()
	defer s.gc.RUnlock()
	for _, l := range m.Layers {
		if size, err := s.content.Info(l.Digest); err != nil || size != l.Size {
			return Summary{}, fmt.Errorf("put image: layer %s is not in the store: %w", l.Digest, errdefs.ErrNotFound)
		}
	}
	for _, b := range []struct {
		d   v1.Hash
		raw []byte
	}{{m.Config.Digest, config}, {sha(manifest), manifest}} {
		if err := s.content.Ingest(ctx, b.d, int64(len(b.raw)), bytesReader(b.raw)); err != nil && !errors.Is(err, errdefs.ErrAlreadyExists) {
			return Summary{}, fmt.Errorf("put image: %w", err)
		}
	}
	d := sha(manifest)
	rec, err := newRecord(m, mt, manifest, config)
	if err != nil {
		return Summary{}, fmt.Errorf("put image: %w", err)
	}
	rec.Pulled = time.Now().UTC()
	var sum Summary
	err = s.db.Update(func(tx *bbolt.Tx) error {
		if err := putRecord(tx, d, rec); err != nil {
			return err
		}
		for _, n := range canon {
			if err := tx.Bucket(bucketNames).Put([]byte(n), []byte(d.String())); err != nil {
				return err
			}
			if err := tx.Bucket(bucketManifests).Delete([]byte(n)); err != nil {
				return err
			}
		}
		sum = summaryOf(tx, d, rec)
		return nil
	})
	if err != nil {
		return Summary{}, fmt.Errorf("put image: %w", err)
	}
	s.syncIndex()
	for _, n := range canon {
		s.emit(EventTag, d, n) // a build's -t names
	}
	return sum, nil
}

// IngestBlob stores r as blob d (size < 0: unknown), verifying it, and
// holds it with lease id, both while GC is held off, so a blob pushed
// ahead of the manifest that will reference it is never collected in
// between. A blob already present is just leased; r is then not read.
func (s *Store) IngestBlob(ctx context.Context, lease string, d v1.Hash, size int64, r io.Reader) error {
	if lease == "" {
		return fmt.Errorf("ingest blob: empty lease id: %w", errdefs.ErrInvalidArgument)
	}
	s.gc.RLock()
	defer s.gc.RUnlock()
	if r == nil {
		if !s.content.Has(d) {
			return fmt.Errorf("blob %s: %w", d, errdefs.ErrNotFound)
		}
	} else if err := s.content.Ingest(ctx, d, size, r); err != nil && !errors.Is(err, errdefs.ErrAlreadyExists) {
		return err
	}
	if err := s.AddLease(ctx, lease, d); err != nil {
		return fmt.Errorf("ingest blob: %w", err)
	}
	return nil
}
