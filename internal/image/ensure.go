package image

import (
	"context"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Ensure returns the cached image ref names, pulling it first when it is
// not in the cache (what `ferry run` of an image never pulled does), and its
// manifest digest.
func (s *Store) Ensure(ctx context.Context, ref string, opts ...PullOption) (v1.Image, v1.Hash, error) {
	img, d, err := s.Image(ctx, ref)
	if !errors.Is(err, errdefs.ErrNotFound) {
		return img, d, err
	}
	if _, perr := s.Pull(ctx, ref, opts...); perr != nil {
		return nil, v1.Hash{}, fmt.Errorf("not in the cache and pull failed: %w", perr)
	}
	return s.Image(ctx, ref)
}
