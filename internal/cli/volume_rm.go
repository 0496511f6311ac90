package cli

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/errdefs"
)

func newVolumeRmCmd(g *globals) *cobra.Command {
	var app string
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [-f] VOLUME...",
		Aliases: []string{"remove"},
		Short:   "Remove volumes and their data (refused while a machine holds one; -f: no error for missing ones)",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return eachMachine(cmd.Context(), g, args, func(ctx context.Context, c *api.Client, n string) error {
				err := c.RemoveVolume(ctx, app, n)
				if force && errors.Is(err, errdefs.ErrNotFound) {
					return nil
				}
				return err
			})
		},
	}
	volumeAppFlag(cmd, &app)
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not fail on volumes that do not exist")
	return cmd
}
