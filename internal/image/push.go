package image

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Push uploads the cached image localRef to remoteRef (default: localRef
// itself) with go-containerregistry's remote.Write: blobs the registry
// already has are skipped, blobs from the same registry are mounted, and
// progress is reported per blob. It returns the pushed manifest digest.
func (s *Store) Push(ctx context.Context, localRef, remoteRef string, opts ...PushOption) (v1.Hash, error) {
	return v1.Hash{}, errNotImplemented
}
