package image

import (
	"context"
	"fmt"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// List returns every cached image, newest pull first.
func (s *Store) List(ctx context.Context) ([]Summary, error) {
	var out []Summary
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketImages).ForEach(func(k, _ []byte) error {
			d, err := v1.NewHash(string(k))
			if err != nil {
				return nil
			}
			r, err := getRecord(tx, d)
			if err != nil {
				return err
			}
			out = append(out, summaryOf(tx, d, r))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pulled.After(out[j].Pulled) })
	return out, nil
}

// Inspect returns the image ref names with its config and layers.
func (s *Store) Inspect(ctx context.Context, ref string) (*Details, error) {
	var sum Summary
	var rec *record
	err := s.db.View(func(tx *bbolt.Tx) error {
		d, _, err := resolve(tx, ref)
		if err != nil {
			return err
		}
		if rec, err = getRecord(tx, d); err != nil {
			return err
		}
		sum = summaryOf(tx, d, rec)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("inspect: %w", err)
	}
	img, err := s.imageByDigest(sum.ID, rec)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", ref, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("inspect %s: config: %w", ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", ref, err)
	}
	det := &Details{Summary: sum, Config: cfg, ConfigDigest: m.Config.Digest}
	for i, l := range m.Layers {
		li := LayerInfo{Digest: l.Digest, Size: l.Size, MediaType: l.MediaType}
		if i < len(cfg.RootFS.DiffIDs) {
			li.DiffID = cfg.RootFS.DiffIDs[i]
		}
		det.Layers = append(det.Layers, li)
	}
	return det, nil
}

// Tag makes dst (a tag reference) point at the image src names.
func (s *Store) Tag(ctx context.Context, src, dst string) error {
	r, err := ParseReference(dst)
	if err != nil {
		return fmt.Errorf("tag: %w", err)
	}
	if _, ok := r.(interface{ DigestStr() string }); ok {
		return fmt.Errorf("tag %s: target must be a tag, not a digest: %w", dst, errdefs.ErrInvalidArgument)
	}
	var tagged v1.Hash
	err = s.db.Update(func(tx *bbolt.Tx) error {
		d, _, err := resolve(tx, src)
		if err != nil {
			return fmt.Errorf("tag: %w", err)
		}
		tagged = d
		return tx.Bucket(bucketNames).Put([]byte(Canonical(r)), []byte(d.String()))
	})
	if err == nil {
		s.syncIndex()
		s.emit(EventTag, tagged, Canonical(r))
	}
	return err
}

// Remove is `ferry rmi ref`: it untags ref; when no other reference names
// the image, it deletes the image and garbage-collects its blobs. An image
// given by ID with several references, or one held by a lease, is refused
// (errdefs.ErrConflict) unless force.
func (s *Store) Remove(ctx context.Context, ref string, force bool) (*RemoveReport, error) {
	rep := &RemoveReport{}
	var img v1.Hash // what the untagged names named
	byName := false
	err := s.db.Update(func(tx *bbolt.Tx) error {
		if d, n, ok := untagManifest(tx, ref); ok {
			rep.Untagged, rep.Deleted, img = []string{n}, []v1.Hash{d}, d
			return nil
		}
		d, name, err := resolve(tx, ref)
		if err != nil {
			return err
		}
		img, byName = d, name != ""
		tags, digests := namesOf(tx, d)
		all := append(tags, digests...)
		untag := all
		if name != "" {
			// Removing by name: drop that name, and any digest references
			// when it was the last tag (Docker drops repo digests with the image).
			untag = []string{name}
			if len(tags) <= 1 {
				untag = append(untag, digests...)
			}
		} else if len(tags) > 1 && !force {
			return fmt.Errorf("image %s is referenced by %d tags (%v): remove them by name or use --force: %w", d, len(tags), tags, errdefs.ErrConflict)
		}
		deleting := len(dedupe(untag)) == len(dedupe(all))
		if deleting && !force {
			if n := leaseCount(tx, d); n > 0 {
				return fmt.Errorf("image %s is in use (%d leases, e.g. a machine's rootfs): stop and remove its machines first, or use --force: %w", d, n, errdefs.ErrConflict)
			}
		}
		for _, n := range dedupe(untag) {
			if err := tx.Bucket(bucketNames).Delete([]byte(n)); err != nil {
				return err
			}
			rep.Untagged = append(rep.Untagged, n)
		}
		if deleting {
			if err := tx.Bucket(bucketImages).Delete([]byte(d.String())); err != nil {
				return err
			}
			rep.Deleted = append(rep.Deleted, d)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rmi %s: %w", ref, err)
	}
	s.syncIndex()
	for _, n := range rep.Untagged {
		// As dockerd: removing a name reports it, not the digest
		// references that go with the last tag; removing by ID reports all.
		if !byName || !strings.Contains(n, "@") {
			s.emit(EventUntag, img, n)
		}
	}
	for _, d := range rep.Deleted {
		s.emit(EventDelete, d, "")
	}
	if len(rep.Deleted) > 0 {
		if _, err := s.GC(ctx); err != nil {
			return rep, fmt.Errorf("rmi %s: %w", ref, err)
		}
	}
	return rep, nil
}

// Prune deletes dangling images (no tag names them), or with all
// every image no lease holds, then garbage-collects; it reports the bytes
// freed on disk.
func (s *Store) Prune(ctx context.Context, all bool) (*PruneReport, error) {
	rep := &PruneReport{}
	var untagged []Event
	err := s.db.Update(func(tx *bbolt.Tx) error {
		untagged = nil
		var victims []v1.Hash
		err := tx.Bucket(bucketImages).ForEach(func(k, _ []byte) error {
			d, err := v1.NewHash(string(k))
			if err != nil {
				return nil
			}
			if leaseCount(tx, d) > 0 {
				return nil
			}
			tags, _ := namesOf(tx, d)
			if all || len(tags) == 0 {
				victims = append(victims, d)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, d := range victims {
			tags, digests := namesOf(tx, d)
			for _, n := range append(tags, digests...) {
				if err := tx.Bucket(bucketNames).Delete([]byte(n)); err != nil {
					return err
				}
				untagged = append(untagged, Event{Action: EventUntag, ID: d, Ref: n})
			}
			if err := tx.Bucket(bucketImages).Delete([]byte(d.String())); err != nil {
				return err
			}
			rep.Deleted = append(rep.Deleted, d)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("image prune: %w", err)
	}
	s.syncIndex()
	for _, e := range untagged {
		s.emit(e.Action, e.ID, e.Ref)
	}
	for _, d := range rep.Deleted {
		s.emit(EventDelete, d, "")
	}
	gc, err := s.GC(ctx)
	if err != nil {
		return rep, fmt.Errorf("image prune: %w", err)
	}
	rep.BytesFreed = gc.BytesFreed
	return rep, nil
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
