package cli

import (
	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/network"
)

func newNetworkInspectCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NETWORK...",
		Short: "Show networks as JSON (subnets, gateways, labels, machines with their addresses and aliases)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			var out []*network.Info
			for _, n := range args {
				info, err := c.InspectNetwork(cmd.Context(), n)
				if err != nil {
					return err
				}
				out = append(out, info)
			}
			return writeJSON(g.out, out)
		},
	}
}
