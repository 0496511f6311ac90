package image

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"go.etcd.io/bbolt"
)

// syncIndex rewrites the content layout's index.json from the metadata, one
// entry per tag (annotated with its full reference) and one per unnamed
// image, so OCI tools can read the cache in place
// (`skopeo copy oci:<root>/content:docker.io/library/alpine:latest …`).
// bbolt stays the source of truth; the index is a derived, best-effort view.
func (s *Store) syncIndex() {
	s.indexMu.Lock()
	defer s.indexMu.Unlock()
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}
	err := s.db.View(func(tx *bbolt.Tx) error {
		named := map[string]bool{}
		if err := tx.Bucket(bucketNames).ForEach(func(k, v []byte) error {
			d, err := v1.NewHash(string(v))
			if err != nil {
				return nil
			}
			r, err := getRecord(tx, d)
			if err != nil {
				return nil
			}
			named[d.String()] = true
			idx.Manifests = append(idx.Manifests, layoutDesc(s, d, r, string(k)))
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketImages).ForEach(func(k, _ []byte) error {
			d, err := v1.NewHash(string(k))
			if err != nil || named[d.String()] {
				return nil
			}
			if r, err := getRecord(tx, d); err == nil {
				idx.Manifests = append(idx.Manifests, layoutDesc(s, d, r, ""))
			}
			return nil
		})
	})
	if err != nil {
		s.opts.logger.Warn("image: rebuild index.json", "err", err)
		return
	}
	sort.SliceStable(idx.Manifests, func(i, j int) bool {
		return idx.Manifests[i].Annotations[AnnotationRefName] < idx.Manifests[j].Annotations[AnnotationRefName]
	})
	b, err := json.Marshal(idx)
	if err != nil {
		return
	}
	path := filepath.Join(s.content.Dir(), "index.json")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		s.opts.logger.Warn("image: write index.json", "err", err)
		return
	}
	if err := os.Rename(tmp, path); err != nil {
		s.opts.logger.Warn("image: write index.json", "err", err)
	}
}

func layoutDesc(s *Store, d v1.Hash, r *record, ref string) v1.Descriptor {
	desc := v1.Descriptor{MediaType: r.MediaType, Digest: d, Platform: &v1.Platform{OS: r.Platform.OS, Architecture: r.Platform.Architecture, Variant: r.Platform.Variant}}
	if size, err := s.content.Info(d); err == nil {
		desc.Size = size
	}
	if ref != "" {
		desc.Annotations = map[string]string{AnnotationRefName: ref, AnnotationContainerdName: ref}
	}
	return desc
}
