package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/api/types"
)

func newComposeStopCmd(g *globals, f *composeFlags) *cobra.Command {
	var timeout string
	cmd := composeVerb(g, f, "stop", "Stop the project's machines (SIGTERM, then a kill after --timeout)", func(ctx context.Context, c *api.Client, app string, m *types.Machine) error {
		if m.State != types.StateStarted && m.State != types.StateStarting {
			return nil
		}
		_, err := c.StopMachine(ctx, app, m.ID, types.StopRequest{Timeout: timeout})
		return err
	})
	cmd.Flags().StringVarP(&timeout, "timeout", "t", "", "seconds (or a duration) before the kill (default the machine's)")
	return cmd
}
