package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
)

func newRestartCmd(g *globals) *cobra.Command {
	var app string
	var sf stopFlags
	cmd := &cobra.Command{
		Use:   "restart [-t TIMEOUT] MACHINE...",
		Short: "Stop and start machines",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return eachMachine(cmd.Context(), g, args, func(ctx context.Context, c *api.Client, n string) error {
				_, err := c.RestartMachine(ctx, app, n, sf.request())
				return err
			})
		},
	}
	appFlag(cmd, &app)
	sf.bind(cmd, "signal to stop with (default SIGTERM)")
	return cmd
}
