package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newVolumePruneCmd(g *globals) *cobra.Command {
	var app string
	var all bool
	cmd := &cobra.Command{
		Use:   "prune [-a]",
		Short: "Remove anonymous volumes no machine holds (-a: every volume no machine holds)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			res, err := c.PruneVolumes(cmd.Context(), app, all)
			if err != nil {
				return err
			}
			if len(res.VolumesDeleted) > 0 {
				fmt.Fprintln(g.out, "Deleted Volumes:")
				for _, n := range res.VolumesDeleted {
					fmt.Fprintln(g.out, n)
				}
				fmt.Fprintln(g.out)
			}
			fmt.Fprintf(g.out, "Total reclaimed space: %s\n", dfSize(res.SpaceReclaimed))
			return nil
		},
	}
	volumeAppFlag(cmd, &app)
	cmd.Flags().BoolVarP(&all, "all", "a", false, "remove every unattached volume, not only anonymous ones")
	return cmd
}
