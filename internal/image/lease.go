package image

import (
	"context"
	"errors"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// AddLease makes lease id hold the image with manifest digest d: GC keeps
// its manifest, config and layers, and Remove/Prune refuse it (unless
// forced), until RemoveLease. A lease may hold several images; adding the
// same pair twice is a no-op.
func (s *Store) AddLease(ctx context.Context, id string, d v1.Hash) error {
	if id == "" {
		return fmt.Errorf("add lease: empty lease id: %w", errdefs.ErrInvalidArgument)
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		if _, err := getRecord(tx, d); err != nil && !s.content.Has(d) {
			return fmt.Errorf("add lease %s: %w", id, err)
		}
		b, err := tx.Bucket(bucketLeases).CreateBucketIfNotExists([]byte(id))
		if err != nil {
			return err
		}
		return b.Put([]byte(d.String()), []byte{})
	})
}

// RemoveLease drops lease id and everything it holds (absent is not an
// error). The blobs it kept go at the next GC.
func (s *Store) RemoveLease(ctx context.Context, id string) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		err := tx.Bucket(bucketLeases).DeleteBucket([]byte(id))
		if err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return fmt.Errorf("remove lease %s: %w", id, err)
		}
		return nil
	})
}

// ReleaseBlobs takes ds out of every lease whose id starts with prefix,
// dropping leases left empty: what those leases kept for a while (blobs
// pushed ahead of their manifest) is now held by an image record.
func (s *Store) ReleaseBlobs(ctx context.Context, prefix string, ds ...v1.Hash) error {
	if prefix == "" || len(ds) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		lb := tx.Bucket(bucketLeases)
		var ids, empty [][]byte
		_ = lb.ForEachBucket(func(id []byte) error {
			if strings.HasPrefix(string(id), prefix) {
				ids = append(ids, append([]byte(nil), id...))
			}
			return nil
		})
		for _, id := range ids {
			b := lb.Bucket(id)
			for _, d := range ds {
				if err := b.Delete([]byte(d.String())); err != nil {
					return fmt.Errorf("release blobs: %w", err)
				}
			}
			if k, _ := b.Cursor().First(); k == nil {
				empty = append(empty, id)
			}
		}
		for _, id := range empty {
			if err := lb.DeleteBucket(id); err != nil {
				return fmt.Errorf("release blobs: %w", err)
			}
		}
		return nil
	})
}

// Leases returns every lease and the manifest digests it holds.
func (s *Store) Leases(ctx context.Context) (map[string][]v1.Hash, error) {
	out := map[string][]v1.Hash{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		lb := tx.Bucket(bucketLeases)
		return lb.ForEachBucket(func(id []byte) error {
			return lb.Bucket(id).ForEach(func(k, _ []byte) error {
				if d, err := v1.NewHash(string(k)); err == nil {
					out[string(id)] = append(out[string(id)], d)
				}
				return nil
			})
		})
	})
	return out, err
}
