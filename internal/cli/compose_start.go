package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/api/types"
)

func newComposeStartCmd(g *globals, f *composeFlags) *cobra.Command {
	return composeVerb(g, f, "start", "Start the project's stopped machines", func(ctx context.Context, c *api.Client, app string, m *types.Machine) error {
		if m.State == types.StateStarted {
			return nil
		}
		_, err := c.StartMachine(ctx, app, m.ID)
		return err
	})
}
