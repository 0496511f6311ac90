package image

import (
	"context"
	"io"
)

// Load imports an OCI image layout tar (ferry save, skopeo oci-archive,
// docker save from Docker 25+) or a legacy `docker save` tarball from r.
// Everything is validated (every blob's digest and size, every manifest,
// diff IDs of uncompressed docker layers) before the first image is
// recorded; a malformed tar leaves the cache unchanged.
func (s *Store) Load(ctx context.Context, r io.Reader) ([]Loaded, error) {
	return nil, errNotImplemented
}
