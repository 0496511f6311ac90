package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newNetworkPruneCmd(g *globals) *cobra.Command {
	var filters []string
	var force bool
	cmd := &cobra.Command{
		Use:   "prune [--filter label=K[=V]]",
		Short: "Remove every network no machine uses (not the default one)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := listFilters(filters)
			if err != nil {
				return err
			}
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			gone, err := c.PruneNetworks(cmd.Context(), o)
			if len(gone) > 0 {
				fmt.Fprintln(g.out, "Deleted networks:")
				for _, n := range gone {
					fmt.Fprintln(g.out, n)
				}
			}
			return err
		},
	}
	cmd.Flags().StringArrayVar(&filters, "filter", nil, "only networks matching label=KEY[=VALUE] or name=NAME")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not ask (ferry never asks; accepted for Docker's scripts)")
	return cmd
}
