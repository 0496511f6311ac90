package compose

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
)

// bootTimeout bounds the wait for a new replica's init to take exec
// requests.
var bootTimeout = 3 * time.Minute

// waitBooted returns once machine name's init takes exec requests (it
// refuses them until it has started the entrypoint): what docker compose
// users expect of a service that is "Started", so that `up -d` followed by
// `exec` works. A machine whose entrypoint already exited is done too.
func waitBooted(ctx context.Context, c Client, app, name string) error {
	ctx, cancel := context.WithTimeout(ctx, bootTimeout)
	defer cancel()
	req := types.ExecRequest{Cmd: guest.BuildOp{Op: guest.BuildReady}.Argv(), User: "0"}
	for {
		_, err := c.ExecMachine(ctx, app, name, req, guest.ExecIO{Stdout: io.Discard, Stderr: io.Discard})
		if err == nil || !strings.Contains(err.Error(), "has not finished booting") {
			return nil
		}
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("%s: not booted after %s: %w", name, bootTimeout, errdefs.ErrTimeout)
			}
			return context.Cause(ctx)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
