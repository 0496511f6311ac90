package mirror

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/image"
)

// PrepareFunc gets an image pushed to the mirror ready to run (the daemon
// builds its root filesystem base), so a machine started from it does
// nothing but boot.
type PrepareFunc func(ctx context.Context, d v1.Hash) error

// prepareQueue bounds the pushed images waiting for their preparation;
// one past it is prepared when a machine first asks instead.
const prepareQueue = 64

// WithPrepare makes each image pushed to the mirror whose platform is the
// host's be prepared by f in the background, one at a time, until ctx
// ends. Pushes never wait for it.
func (s *Server) WithPrepare(ctx context.Context, f PrepareFunc) *Server {
	q := make(chan v1.Hash, prepareQueue)
	s.prepare = q
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case d := <-q:
				if err := f(ctx, d); err != nil && ctx.Err() == nil {
					s.log.Warn("mirror: preparing a pushed image to run", "image", d, "err", err)
				}
			}
		}
	}()
	return s
}

// queuePrepare hands a stored image to the preparation, if there is one
// and the image can run here.
func (s *Server) queuePrepare(sum image.Summary) {
	if s.prepare == nil {
		return
	}
	host := image.HostPlatform()
	if sum.Platform.OS != host.OS || sum.Platform.Architecture != host.Architecture {
		return
	}
	select {
	case s.prepare <- sum.ID:
	default:
		s.log.Info("mirror: preparation queue full; the image is prepared when a machine first starts from it", "image", sum.ID)
	}
}
