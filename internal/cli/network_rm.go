package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/errdefs"
)

func newNetworkRmCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [-f] NETWORK...",
		Aliases: []string{"remove"},
		Short:   "Remove networks no machine uses (bridge, rules, addresses and resolver go with them)",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			var errs []error
			for _, n := range args {
				if err := c.RemoveNetwork(context.WithoutCancel(cmd.Context()), n); err != nil {
					if !force || !errors.Is(err, errdefs.ErrNotFound) {
						errs = append(errs, err)
					}
					continue
				}
				fmt.Fprintln(g.out, n)
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "no error for a network that does not exist")
	return cmd
}
