package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
)

func newKillCmd(g *globals) *cobra.Command {
	var app, signal string
	cmd := &cobra.Command{
		Use:   "kill [-s SIGNAL] MACHINE...",
		Short: "Send a signal to machines' entrypoints (default SIGKILL)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return eachMachine(cmd.Context(), g, args, func(ctx context.Context, c *api.Client, n string) error {
				return c.SignalMachine(ctx, app, n, signal)
			})
		},
	}
	appFlag(cmd, &app)
	cmd.Flags().StringVarP(&signal, "signal", "s", "SIGKILL", "signal to send")
	return cmd
}
