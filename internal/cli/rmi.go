package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/image"
)

func newRmiCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rmi [-f] IMAGE...",
		Short: "Remove images from the cache",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			var errs []error
			for _, ref := range args {
				rep, err := c.RemoveImage(cmd.Context(), ref, force)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				printRemoved(g, rep)
			}
			return joinErrors(errs)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove the image even when other references or machines hold it")
	return cmd
}

func printRemoved(g *globals, rep image.RemoveReport) {
	for _, r := range rep.Untagged {
		fmt.Fprintf(g.out, "Untagged: %s\n", image.FamiliarName(r))
	}
	for _, d := range rep.Deleted {
		fmt.Fprintf(g.out, "Deleted: %s\n", d)
	}
}
