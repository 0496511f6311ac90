package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/api/types"
)

func newComposeKillCmd(g *globals, f *composeFlags) *cobra.Command {
	signal := "SIGKILL"
	cmd := composeVerb(g, f, "kill", "Send a signal to the entrypoints of the project's running machines", func(ctx context.Context, c *api.Client, app string, m *types.Machine) error {
		if m.State != types.StateStarted {
			return nil
		}
		return c.SignalMachine(ctx, app, m.ID, signal)
	})
	cmd.Flags().StringVarP(&signal, "signal", "s", signal, "signal to send")
	return cmd
}
