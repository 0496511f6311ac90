package image

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.etcd.io/bbolt"
)

// GC deletes every blob that no image record, no tagged manifest
// (PutManifest) and no lease references. It
// waits for in-flight pulls, loads and pushes to finish first, and holds
// them off while it runs.
func (s *Store) GC(ctx context.Context) (*GCReport, error) {
	s.gc.Lock()
	defer s.gc.Unlock()
	return s.gcLocked(ctx, nil, false)
}

// gcLocked collects with s.gc held exclusively. When only is non-nil, just
// those blobs are candidates (used to undo a failed pull or load). With
// demote, dead blobs move back to ingest/ as complete partial downloads
// instead of being deleted, so a retried pull commits them without
// fetching them again while the cache itself is left as before.
func (s *Store) gcLocked(ctx context.Context, only map[v1.Hash]bool, demote bool) (*GCReport, error) {
	roots := map[v1.Hash]bool{}
	add := func(s []byte) error {
		if d, err := v1.NewHash(string(s)); err == nil {
			roots[d] = true
		}
		return nil
	}
	err := s.db.View(func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bucketImages).ForEach(func(k, _ []byte) error { return add(k) }); err != nil {
			return err
		}
		if err := tx.Bucket(bucketManifests).ForEach(func(_, v []byte) error { return add(v) }); err != nil {
			return err
		}
		lb := tx.Bucket(bucketLeases)
		return lb.ForEachBucket(func(id []byte) error {
			return lb.Bucket(id).ForEach(func(k, _ []byte) error { return add(k) })
		})
	})
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	// Each root is kept, and a root that is a manifest keeps its config
	// and layers; an index keeps its manifests, expanded in turn.
	live := map[v1.Hash]bool{}
	work := make([]v1.Hash, 0, len(roots))
	for d := range roots {
		work = append(work, d)
	}
	for len(work) > 0 {
		d := work[len(work)-1]
		work = work[:len(work)-1]
		if live[d] {
			continue
		}
		live[d] = true
		if size, err := s.content.Info(d); err != nil || size > MaxManifestSize {
			continue // a leased layer (a build's), not a manifest: nothing more to keep
		}
		raw, err := s.content.ReadAll(d)
		if err != nil {
			continue // a record without its manifest: nothing more to keep
		}
		refs, ok := referencesOf(raw)
		if !ok {
			continue
		}
		if refs.Config != nil {
			live[refs.Config.Digest] = true
		}
		for _, l := range refs.Layers {
			live[l.Digest] = true
		}
		for _, m := range refs.Manifests {
			work = append(work, m.Digest)
		}
	}
	rep := &GCReport{}
	var dead []v1.Hash
	var sizes []int64
	if err := s.content.Walk(func(d v1.Hash, size int64) error {
		if !live[d] && (only == nil || only[d]) {
			dead = append(dead, d)
			sizes = append(sizes, size)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	for i, d := range dead {
		del := s.content.Delete
		if demote {
			del = s.content.Demote
		}
		if err := del(d); err != nil {
			return rep, fmt.Errorf("gc: %w", err)
		}
		rep.Blobs++
		rep.BytesFreed += sizes[i]
	}
	if rep.Blobs > 0 {
		s.opts.logger.Info("image gc", "blobs", rep.Blobs, "bytes_freed", rep.BytesFreed)
	}
	return rep, nil
}

// Verify re-hashes every committed blob and returns the digests whose
// content does not match (empty when the cache is sound).
func (s *Store) Verify(ctx context.Context) ([]v1.Hash, error) {
	var bad []v1.Hash
	err := s.content.Walk(func(d v1.Hash, _ int64) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.content.Verify(d); err != nil {
			bad = append(bad, d)
		}
		return nil
	})
	return bad, err
}
