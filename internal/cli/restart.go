package cli

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
)

func newRestartCmd(g *globals) *cobra.Command {
	var app, signal string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "restart [-t TIMEOUT] MACHINE...",
		Short: "Stop and start machines",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := api.StopRequest{Signal: signal}
			if timeout > 0 {
				req.Timeout = timeout.String()
			}
			return eachMachine(cmd.Context(), g, args, func(ctx context.Context, c *api.Client, n string) error {
				_, err := c.RestartMachine(ctx, app, n, req)
				return err
			})
		},
	}
	appFlag(cmd, &app)
	cmd.Flags().StringVarP(&signal, "signal", "s", "", "signal to stop with (default SIGTERM)")
	cmd.Flags().DurationVarP(&timeout, "time", "t", 0, "time to wait before killing the VM (default 10s)")
	return cmd
}
