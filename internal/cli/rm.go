package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
)

func newRmCmd(g *globals) *cobra.Command {
	var app string
	var force, volumes bool
	cmd := &cobra.Command{
		Use:   "rm [-f] [-v] MACHINE...",
		Short: "Destroy machines (-f kills running ones)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return eachMachine(cmd.Context(), g, args, func(ctx context.Context, c *api.Client, n string) error {
				return c.DestroyMachineWithVolumes(ctx, app, n, force, volumes)
			})
		},
	}
	appFlag(cmd, &app)
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill and destroy running machines")
	cmd.Flags().BoolVarP(&volumes, "volumes", "v", false, "also remove the machines' anonymous volumes (named volumes stay)")
	return cmd
}
