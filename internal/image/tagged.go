package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// bucketManifests holds the tags of manifests that are not runnable
// images (indexes, artifact manifests) pushed to the mirror: canonical
// ref → manifest digest. They are not images (`ferry images` does not
// list them, `ferry run` cannot start them), but GC keeps each one and
// everything it references while a tag names it.
var bucketManifests = []byte("manifests")

// PutManifest stores raw, a manifest that is not an image (an index or an
// artifact manifest), as a blob and tags it with names (moving a name off
// any image it named). It returns the manifest's digest.
func (s *Store) PutManifest(ctx context.Context, raw []byte, names []string) (v1.Hash, error) {
	if len(raw) > MaxManifestSize {
		return v1.Hash{}, fmt.Errorf("put manifest: %d bytes, over the %d limit: %w", len(raw), MaxManifestSize, errdefs.ErrInvalidArgument)
	}
	var canon []string
	for _, n := range names {
		r, err := ParseReference(n)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("put manifest: tag %q: %w", n, err)
		}
		canon = append(canon, Canonical(r))
	}
	d := sha(raw)
	s.gc.RLock()
	defer s.gc.RUnlock()
	if err := s.content.Ingest(ctx, d, int64(len(raw)), bytesReader(raw)); err != nil && !errors.Is(err, errdefs.ErrAlreadyExists) {
		return v1.Hash{}, fmt.Errorf("put manifest: %w", err)
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		for _, n := range canon {
			if err := tx.Bucket(bucketNames).Delete([]byte(n)); err != nil {
				return err
			}
			if err := tx.Bucket(bucketManifests).Put([]byte(n), []byte(d.String())); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return v1.Hash{}, fmt.Errorf("put manifest: %w", err)
	}
	s.syncIndex()
	return d, nil
}

// TaggedManifest returns the raw manifest ref names: an image's, or one
// PutManifest tagged.
func (s *Store) TaggedManifest(ctx context.Context, ref string) ([]byte, v1.Hash, error) {
	r, err := ParseReference(ref)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	c := Canonical(r)
	var v []byte
	_ = s.db.View(func(tx *bbolt.Tx) error {
		if v = tx.Bucket(bucketNames).Get([]byte(c)); v == nil {
			v = tx.Bucket(bucketManifests).Get([]byte(c))
		}
		v = append([]byte(nil), v...)
		return nil
	})
	if len(v) == 0 {
		return nil, v1.Hash{}, fmt.Errorf("manifest %s: %w", ref, errdefs.ErrNotFound)
	}
	d, err := v1.NewHash(string(v))
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("manifest %s: %w", ref, err)
	}
	raw, err := s.content.ReadAll(d)
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("manifest %s: %w", ref, err)
	}
	return raw, d, nil
}

// ManifestTags returns the canonical names PutManifest tagged.
func (s *Store) ManifestTags(ctx context.Context) ([]string, error) {
	var out []string
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketManifests).ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}

// untagManifest drops ref when it tags a manifest that is not an image
// (false: it does not), for Remove.
func untagManifest(tx *bbolt.Tx, ref string) (v1.Hash, string, bool) {
	r, err := ParseReference(ref)
	if err != nil {
		return v1.Hash{}, "", false
	}
	c := Canonical(r)
	b := tx.Bucket(bucketManifests)
	d, err := v1.NewHash(string(b.Get([]byte(c))))
	if err != nil || b.Delete([]byte(c)) != nil {
		return v1.Hash{}, "", false
	}
	return d, c, true
}

// references is what any manifest (image, index, artifact; media types
// not checked) points at: GC keeps them, and expands the manifests.
type references struct {
	Config    *v1.Descriptor  `json:"config"`
	Layers    []v1.Descriptor `json:"layers"`
	Manifests []v1.Descriptor `json:"manifests"`
}

// referencesOf parses raw as a manifest of any kind (false: not one).
func referencesOf(raw []byte) (references, bool) {
	var r references
	if json.Unmarshal(raw, &r) != nil || (r.Config == nil && r.Layers == nil && r.Manifests == nil) {
		return references{}, false
	}
	return r, true
}
