package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

// newBuilderCmd is `ferry builder`, the management group of ferry build
// (docker builder prune).
func newBuilderCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "builder", Short: "Manage ferry build's step cache", Args: cobra.NoArgs}
	var until time.Duration
	prune := &cobra.Command{
		Use:   "prune [--until DURATION]",
		Short: "Remove cached build steps (all, or those unused for DURATION)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			rep, err := c.PruneBuildCache(cmd.Context(), until)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(g.out, "Deleted build cache steps: %d\nTotal reclaimed space: %s\n", rep.Steps, humanSize(rep.BytesFreed))
			return err
		},
	}
	prune.Flags().DurationVar(&until, "until", 0, "only steps unused for this long (e.g. 168h)")
	cmd.AddCommand(prune)
	return cmd
}
