package cli

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/api/types"
)

// stopFlags are the flags stop and restart share.
type stopFlags struct {
	signal  string
	timeout time.Duration
}

func (f *stopFlags) bind(cmd *cobra.Command, signalHelp string) {
	cmd.Flags().StringVarP(&f.signal, "signal", "s", "", signalHelp)
	cmd.Flags().DurationVarP(&f.timeout, "time", "t", 0, "time to wait before killing the VM (default 10s)")
}

func (f *stopFlags) request() types.StopRequest {
	req := types.StopRequest{Signal: f.signal}
	if f.timeout > 0 {
		req.Timeout = f.timeout.String()
	}
	return req
}

func newStopCmd(g *globals) *cobra.Command {
	var app string
	var sf stopFlags
	cmd := &cobra.Command{
		Use:   "stop [-s SIGNAL] [-t TIMEOUT] MACHINE...",
		Short: "Stop machines (signal the entrypoint, kill the VM after the timeout)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return eachMachine(cmd.Context(), g, args, func(ctx context.Context, c *api.Client, n string) error {
				_, err := c.StopMachine(ctx, app, n, sf.request())
				return err
			})
		},
	}
	appFlag(cmd, &app)
	sf.bind(cmd, "signal to send first (default SIGTERM)")
	return cmd
}
