package cli

import (
	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/compose"
)

func newComposeDownCmd(g *globals, f *composeFlags) *cobra.Command {
	var o compose.DownOptions
	cmd := &cobra.Command{
		Use:   "down [flags]",
		Short: "Stop and remove the project's machines and networks (-v: and its named volumes)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			plan, c, err := f.plan(cmd.Context(), g)
			if err != nil {
				return err
			}
			return compose.Down(cmd.Context(), c, plan.Project, plan, o)
		},
	}
	cmd.Flags().BoolVarP(&o.Volumes, "volumes", "v", false, "also remove the project's named volumes")
	cmd.Flags().BoolVar(&o.RemoveOrphans, "remove-orphans", false, "also remove machines of services not in the file")
	return cmd
}
