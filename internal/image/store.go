package image

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/image/content"
	"github.com/ferryvm/ferry/internal/paths"
)

// Store is the image cache of one data root. Create it with Open; it is safe
// for concurrent use.
type Store struct {
	opts    options
	db      *bbolt.DB
	content *content.Store

	// gc is held shared by every pull/load/push for its whole duration and
	// exclusively by GC, so GC never deletes a blob an in-flight ingest
	// is about to reference.
	gc sync.RWMutex

	bytesFetched atomic.Int64
	indexMu      sync.Mutex // serialises rewrites of the layout's index.json

	events eventBus // what changed, for Subscribe
}

// Open opens the image cache under root, with metadata in db (the daemon's
// bbolt database; this package uses its own top-level buckets). It removes
// stale ingests and moves blobs nothing references (left by a killed pull)
// back to ingest/, so the cache lists and holds exactly what its metadata says.
func Open(ctx context.Context, root paths.Root, db *bbolt.DB, opts ...Option) (*Store, error) {
	o := defaultOptions()
	for _, f := range opts {
		f(&o)
	}
	var copts []content.Option
	if o.noSync {
		copts = append(copts, content.WithoutFsync())
	}
	cs, err := content.Open(root.Content(), copts...)
	if err != nil {
		return nil, err
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketImages, bucketNames, bucketLeases, bucketManifests} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("open image store: %w", err)
	}
	s := &Store{opts: o, db: db, content: cs}
	// Blobs nothing references were left by a pull or load that was killed:
	// take them out of the cache, keeping them in ingest/ for a retry.
	if _, err := s.gcLocked(ctx, nil, true); err != nil {
		return nil, fmt.Errorf("open image store: %w", err)
	}
	s.syncIndex()
	return s, nil
}

// Content is the underlying blob store (read-only use: Has/Open/Info).
func (s *Store) Content() *content.Store { return s.content }

// BytesFetched is the total blob bytes this Store has read from registries.
func (s *Store) BytesFetched() int64 { return s.bytesFetched.Load() }
