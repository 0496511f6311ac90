package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/volume"
)

func newVolumeExtendCmd(g *globals) *cobra.Command {
	var app, size string
	cmd := &cobra.Command{
		Use:   "extend --size SIZE VOLUME",
		Short: "Grow a volume (its filesystem grows when a machine next mounts it; data is kept)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if size == "" {
				return fmt.Errorf("extend: --size is required (e.g. --size 20g): %w", errdefs.ErrInvalidArgument)
			}
			n, err := volume.ParseSize(size)
			if err != nil {
				return err
			}
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			res, err := c.ExtendVolume(cmd.Context(), app, args[0], api.ExtendVolumeRequest{SizeBytes: n})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.out, "%s: %s\n", res.Volume.Name, volume.FormatSize(res.Volume.SizeBytes))
			if res.NeedsRestart {
				fmt.Fprintf(g.err, "ferry: machine %s sees the new size when it next starts (ferry restart)\n", attachedTo(res.Volume))
			}
			return nil
		},
	}
	volumeAppFlag(cmd, &app)
	cmd.Flags().StringVar(&size, "size", "", "the new size (larger than now): 20g, 1536m, ...")
	return cmd
}

func attachedTo(v api.Volume) string {
	if v.AttachedMachineID != nil {
		return *v.AttachedMachineID
	}
	for _, a := range v.Attachments {
		if a.Active {
			return a.MachineID
		}
	}
	return "-"
}
