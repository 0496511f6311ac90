package compose

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
)

// bootTimeout bounds the wait for a new replica's init to take exec
// requests.
var bootTimeout = 3 * time.Minute

// waitBooted returns once machine name's init takes exec requests (it
// refuses them until it has started the entrypoint): what docker compose
// users expect of a service that is "Started", so that `up -d` followed by
// `exec` works. The daemon waits (wait?state=booted); a machine whose
// entrypoint already exited is done too.
func waitBooted(ctx context.Context, c Client, app, name string) error {
	_, err := c.WaitMachine(ctx, app, name, types.WaitBooted, bootTimeout)
	if errors.Is(err, errdefs.ErrTimeout) {
		return fmt.Errorf("%s: not booted after %s: %w", name, bootTimeout, errdefs.ErrTimeout)
	}
	if err != nil {
		return fmt.Errorf("wait for %s to boot: %w", name, err)
	}
	return nil
}
