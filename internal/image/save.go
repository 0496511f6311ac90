package image

import (
	"context"
	"io"
)

// Save writes the images refs name as one OCI image layout tar to w
// (oci-layout, index.json, blobs/sha256/…, plus a docker-compatible
// manifest.json). Each index entry carries org.opencontainers.image.ref.name
// (the tag) and io.containerd.image.name (the full reference), which
// `ferry load`, `skopeo copy oci-archive:` and podman read.
func (s *Store) Save(ctx context.Context, w io.Writer, refs []string) error {
	return errNotImplemented
}
