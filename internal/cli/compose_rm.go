package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
)

func newComposeRmCmd(g *globals, f *composeFlags) *cobra.Command {
	var force, stop, volumes bool
	cmd := composeVerb(g, f, "rm", "Remove the project's stopped machines (-s: stop them first)", func(ctx context.Context, c *api.Client, app string, m *types.Machine) error {
		if m.State == types.StateStarted && !stop {
			return fmt.Errorf("machine is running; stop it first or use -s: %w", errdefs.ErrConflict)
		}
		return c.DestroyMachineWithVolumes(ctx, app, m.ID, true, volumes)
	})
	fl := cmd.Flags()
	fl.BoolVarP(&force, "force", "f", false, "do not ask (ferry never asks)")
	fl.BoolVarP(&stop, "stop", "s", false, "stop running machines first")
	fl.BoolVarP(&volumes, "volumes", "v", false, "also remove their anonymous volumes")
	return cmd
}
