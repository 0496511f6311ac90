package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/volume"
)

// newVolumeSnapshotCmd is `ferry volume snapshot create|ls|rm`.
func newVolumeSnapshotCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "snapshot", Aliases: []string{"snapshots"}, Short: "Manage volume snapshots", Args: cobra.NoArgs}
	var app, format string
	create := &cobra.Command{
		Use:   "create VOLUME",
		Short: "Snapshot a volume (reflink where the data root's filesystem has it, else a sparse copy)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			s, err := c.CreateSnapshot(cmd.Context(), app, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(g.out, s.ID)
			return nil
		},
	}
	ls := &cobra.Command{
		Use:     "ls [VOLUME]",
		Aliases: []string{"list"},
		Short:   "List snapshots (of one volume, or of the app)",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "" && format != "table" && format != "json" {
				return fmt.Errorf("--format %q: want table or json: %w", format, errdefs.ErrInvalidArgument)
			}
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			vol := ""
			if len(args) == 1 {
				vol = args[0]
			}
			list, err := c.ListSnapshots(cmd.Context(), app, vol)
			if err != nil {
				return err
			}
			if format == "json" {
				if list == nil {
					list = []api.VolumeSnapshot{}
				}
				return writeJSON(g.out, list)
			}
			return printSnapshots(g.out, list)
		},
	}
	ls.Flags().StringVar(&format, "format", "", "output format: table (default) or json")
	rm := &cobra.Command{
		Use:     "rm SNAPSHOT...",
		Aliases: []string{"remove"},
		Short:   "Remove snapshots",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return eachMachine(cmd.Context(), g, args, func(ctx context.Context, c *api.Client, id string) error {
				return c.RemoveSnapshot(ctx, app, id)
			})
		},
	}
	for _, c := range []*cobra.Command{create, ls, rm} {
		volumeAppFlag(c, &app)
	}
	cmd.AddCommand(create, ls, rm)
	return cmd
}

func printSnapshots(w io.Writer, list []api.VolumeSnapshot) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "ID\tVOLUME\tSIZE\tMETHOD\tCREATED")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID, s.VolumeName, volume.FormatSize(s.Size), s.Method, s.CreatedAt.Local().Format("2006-01-02 15:04:05"))
	}
	return tw.Flush()
}
