package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

func newNetworkRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NETWORK...",
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
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(g.out, n)
			}
			return errors.Join(errs...)
		},
	}
}
