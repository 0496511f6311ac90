package daemon

import "context"

// imageService is placeholder until internal/image lands.
type imageService interface{}

// wireImages constructs the image store and registers the image API.
func wireImages(ctx context.Context, d *daemon) error {
	return nil
}
