package build

import (
	"context"
	"io"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/image"
)

// FromStore adapts ferry's image cache to what a build needs: the store's
// methods, blob access through its content store, its pull as the Puller
// and its push as the Pusher (until the host-local mirror takes pushes).
func FromStore(s *image.Store) (Images, Puller, Pusher) {
	a := storeImages{s}
	return a, a, a
}

type storeImages struct{ *image.Store }

func (s storeImages) OpenBlob(d v1.Hash) (io.ReadCloser, error) { return s.Content().Open(d) }
func (s storeImages) HasBlob(d v1.Hash) bool                    { return s.Content().Has(d) }

func (s storeImages) Pull(ctx context.Context, ref string, progress func(image.Progress)) (v1.Hash, error) {
	var opts []image.PullOption
	if progress != nil {
		opts = append(opts, image.PullProgress(progress))
	}
	res, err := s.Store.Pull(ctx, ref, opts...)
	if err != nil {
		return v1.Hash{}, err
	}
	return res.Image.ID, nil
}

func (s storeImages) Push(ctx context.Context, ref string, auth authn.Authenticator, progress func(image.Progress)) (v1.Hash, error) {
	var opts []image.PushOption
	if auth != nil {
		opts = append(opts, image.PushAuth(auth))
	}
	if progress != nil {
		opts = append(opts, image.PushProgress(progress))
	}
	return s.Store.Push(ctx, ref, "", opts...)
}
