package image

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Save writes the images refs name as one OCI image layout tar to w
// (oci-layout, index.json, a docker-compatible manifest.json, then
// blobs/sha256/…). Each index entry carries org.opencontainers.image.ref.name
// and io.containerd.image.name, both the full reference
// (docker.io/library/alpine:latest), which `ferry load`, `skopeo copy
// oci-archive:FILE:REF` and podman read. A ref given by ID is saved unnamed.
func (s *Store) Save(ctx context.Context, w io.Writer, refs []string) error {
	if len(refs) == 0 {
		return fmt.Errorf("save: no image given: %w", errdefs.ErrInvalidArgument)
	}
	s.gc.RLock() // keep GC from deleting what we are about to stream
	defer s.gc.RUnlock()

	type item struct {
		d    v1.Hash
		name string
	}
	var items []item
	err := s.db.View(func(tx *bbolt.Tx) error {
		for _, r := range refs {
			d, name, err := resolve(tx, r)
			if err != nil {
				return err
			}
			if strings.Contains(name, "@") {
				name = "" // a digest reference is not a name to restore
			}
			items = append(items, item{d, name})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: "application/vnd.oci.image.index.v1+json"}
	var dms []dockerManifest
	var blobs []v1.Descriptor
	seen := map[v1.Hash]bool{}
	add := func(d v1.Descriptor) {
		if !seen[d.Digest] {
			seen[d.Digest] = true
			blobs = append(blobs, d)
		}
	}
	for _, it := range items {
		raw, err := s.content.ReadAll(it.d)
		if err != nil {
			return fmt.Errorf("save %s: %w", it.d, err)
		}
		m, mt, err := ParseManifest(raw)
		if err != nil {
			return fmt.Errorf("save %s: %w", it.d, err)
		}
		desc := v1.Descriptor{MediaType: mt, Digest: it.d, Size: int64(len(raw))}
		dm := dockerManifest{Config: blobPath(m.Config.Digest)}
		if it.name != "" {
			desc.Annotations = map[string]string{AnnotationRefName: it.name, AnnotationContainerdName: it.name}
			dm.RepoTags = []string{FamiliarName(it.name)}
		}
		idx.Manifests = append(idx.Manifests, desc)
		add(desc)
		add(m.Config)
		for _, l := range m.Layers {
			add(l)
			dm.Layers = append(dm.Layers, blobPath(l.Digest))
		}
		dms = append(dms, dm)
	}
	tw := tar.NewWriter(w)
	idxJSON, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	dmJSON, err := json.Marshal(dms)
	if err != nil {
		return err
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(0, 0)}); err != nil {
			return fmt.Errorf("save: %w", err)
		}
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)}, {"index.json", idxJSON}, {"manifest.json", dmJSON}} {
		if err := writeTarFile(tw, f.name, int64(len(f.data)), bytesReader(f.data)); err != nil {
			return fmt.Errorf("save: %w", err)
		}
	}
	for _, b := range blobs {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := s.content.Open(b.Digest)
		if err != nil {
			return fmt.Errorf("save: %w", err)
		}
		err = writeTarFile(tw, blobPath(b.Digest), b.Size, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("save: blob %s: %w", b.Digest, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	for _, it := range items {
		s.emit(EventSave, it.d, "")
	}
	return nil
}

func blobPath(d v1.Hash) string { return "blobs/" + d.Algorithm + "/" + d.Hex }

func writeTarFile(tw *tar.Writer, name string, size int64, r io.Reader) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o444, Size: size, ModTime: time.Unix(0, 0)}); err != nil {
		return err
	}
	_, err := io.CopyN(tw, r, size)
	return err
}
