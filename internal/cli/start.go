package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
)

func newStartCmd(g *globals) *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use:   "start MACHINE...",
		Short: "Start created or stopped machines",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return eachMachine(cmd.Context(), g, args, func(ctx context.Context, c *api.Client, n string) error {
				_, err := c.StartMachine(ctx, app, n)
				return err
			})
		},
	}
	appFlag(cmd, &app)
	return cmd
}
