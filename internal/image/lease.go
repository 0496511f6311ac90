package image

import (
	"context"
	"errors"
	"fmt"

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
