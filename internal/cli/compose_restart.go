package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/api/types"
)

func newComposeRestartCmd(g *globals, f *composeFlags) *cobra.Command {
	var timeout string
	cmd := composeVerb(g, f, "restart", "Restart the project's machines", func(ctx context.Context, c *api.Client, app string, m *types.Machine) error {
		_, err := c.RestartMachine(ctx, app, m.ID, types.StopRequest{Timeout: timeout})
		return err
	})
	cmd.Flags().StringVarP(&timeout, "timeout", "t", "", "seconds (or a duration) before the kill (default the machine's)")
	return cmd
}
