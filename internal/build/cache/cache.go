// Package cache is ferry build's content-addressed step cache.
//
// A step's key is the digest of its parent's key and the step itself: the
// instruction with its arguments expanded, the environment, user and
// working directory it runs with, and the checksums of the content it
// reads (COPY sources, bind-mount sources; never mtimes). A stage's first
// parent is its base image's manifest digest, so a different base misses.
// The key of a step therefore names everything its layer depends on, and
// a hit reuses the layer without running anything.
//
// Records live in the "build-cache" bucket of the daemon's bbolt database:
// key → the layer (blob digest, diff ID, size), when it was made and last
// used. Each record's blob is held in the image store under the lease
// "build-cache:<key>", so image GC keeps it; Prune drops records and their
// leases (the blobs then go at the next GC).
package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/build/layer"
)

var bucket = []byte("build-cache")

// LeasePrefix starts the image-store lease that holds a record's blob.
const LeasePrefix = "build-cache:"

// Lease is the lease id holding the blob of key.
func Lease(key string) string { return LeasePrefix + key }

// Key derives a step key from its parent key and the step's parts, each
// length-prefixed so no two part lists collide.
func Key(parent string, parts ...string) string {
	h := sha256.New()
	fmt.Fprintf(h, "ferry-build-cache v1\n%d:%s\n", len(parent), parent)
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s\n", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Record is one cached layer.
type Record struct {
	Layer    layer.Blob `json:"layer"`
	Created  time.Time  `json:"created"`
	LastUsed time.Time  `json:"last_used"`
	// Step is the instruction that made it, for listings.
	Step string `json:"step,omitempty"`
}

// Leaser releases the lease of a pruned record.
type Leaser interface {
	RemoveLease(ctx context.Context, id string) error
}

// Blobs tells whether a record's blob is still stored.
type Blobs interface {
	Has(d v1.Hash) bool
}

// Store is the step cache.
type Store struct {
	db     *bbolt.DB
	leases Leaser
	blobs  Blobs
}

// Open opens the cache in db.
func Open(db *bbolt.DB, leases Leaser, blobs Blobs) (*Store, error) {
	if err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	}); err != nil {
		return nil, fmt.Errorf("open build cache: %w", err)
	}
	return &Store{db: db, leases: leases, blobs: blobs}, nil
}

// Get returns the record of key, marking it used. A record whose blob is
// gone counts as a miss.
func (s *Store) Get(key string) (*Record, bool) {
	var rec *Record
	_ = s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucket).Get([]byte(key))
		if b == nil {
			return nil
		}
		var r Record
		if json.Unmarshal(b, &r) != nil {
			return nil
		}
		if s.blobs != nil && !s.blobs.Has(r.Layer.Digest) {
			return tx.Bucket(bucket).Delete([]byte(key))
		}
		r.LastUsed = time.Now().UTC()
		if raw, err := json.Marshal(r); err == nil {
			_ = tx.Bucket(bucket).Put([]byte(key), raw)
		}
		rec = &r
		return nil
	})
	return rec, rec != nil
}

// Put records key's layer (its blob already stored under Lease(key)).
func (s *Store) Put(key string, rec Record) error {
	now := time.Now().UTC()
	if rec.Created.IsZero() {
		rec.Created = now
	}
	rec.LastUsed = now
	raw, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucket).Put([]byte(key), raw) })
}

// Entry is a record with its key.
type Entry struct {
	Key string `json:"key"`
	Record
}

// List returns every record, most recently used first.
func (s *Store) List() ([]Entry, error) {
	var out []Entry
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			var r Record
			if json.Unmarshal(v, &r) == nil {
				out = append(out, Entry{Key: string(k), Record: r})
			}
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].LastUsed.After(out[j].LastUsed) })
	return out, err
}

// Prune removes records not used since before (zero: all) and releases
// their leases; it returns how many it removed and their compressed size.
func (s *Store) Prune(ctx context.Context, before time.Time) (int, int64, error) {
	ents, err := s.List()
	if err != nil {
		return 0, 0, err
	}
	n, size := 0, int64(0)
	for _, e := range ents {
		if !before.IsZero() && !e.LastUsed.Before(before) {
			continue
		}
		if err := s.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucket).Delete([]byte(e.Key)) }); err != nil {
			return n, size, err
		}
		if s.leases != nil {
			if err := s.leases.RemoveLease(ctx, Lease(e.Key)); err != nil {
				return n, size, err
			}
		}
		n++
		size += e.Layer.Size
	}
	return n, size, nil
}

// Part formats a labelled key part ("env=A=1\x00B=2").
func Part(label string, values ...string) string {
	return label + "=" + strings.Join(values, "\x00")
}
