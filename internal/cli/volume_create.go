package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/volume"
)

func newVolumeCreateCmd(g *globals) *cobra.Command {
	var (
		app, size, snapshot string
		encrypted           bool
		labels              []string
	)
	cmd := &cobra.Command{
		Use:   "create [--size 1g] [--encrypted=true|false] [--label K=V] [--snapshot ID] NAME",
		Short: "Create a volume (a sparse file: it costs disk only as it is written)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := api.CreateVolumeRequest{Name: args[0], SnapshotID: snapshot}
			if cmd.Flags().Changed("encrypted") {
				req.Encrypted = &encrypted
			}
			if size != "" {
				n, err := volume.ParseSize(size)
				if err != nil {
					return err
				}
				req.SizeBytes = n
			}
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok || k == "" {
					return fmt.Errorf("--label %q: want KEY=VALUE: %w", l, errdefs.ErrInvalidArgument)
				}
				if req.Labels == nil {
					req.Labels = map[string]string{}
				}
				req.Labels[k] = v
			}
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			v, err := c.CreateVolume(cmd.Context(), app, req)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.out, v.Name)
			return nil
		},
	}
	volumeAppFlag(cmd, &app)
	f := cmd.Flags()
	f.StringVar(&size, "size", "", "size: 1g, 512m, 10GiB, ... (default 1g, or the snapshot's size)")
	f.BoolVar(&encrypted, "encrypted", true, "encrypt with LUKS2 (a per-volume key; opened inside the guest)")
	f.StringArrayVar(&labels, "label", nil, "a label KEY=VALUE (repeatable)")
	f.StringVar(&snapshot, "snapshot", "", "make the volume a copy of this snapshot (ferry volume snapshot ls)")
	return cmd
}
