package cli

import (
	"fmt"
	"net/netip"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/network"
)

func newNetworkCreateCmd(g *globals) *cobra.Command {
	var subnets, gateways, labels []string
	var internal, ipv6 bool
	var driver string
	cmd := &cobra.Command{
		Use:   "create [--subnet CIDR] [--gateway IP] [--internal] [--label K=V] [--ipv6=false] NAME",
		Short: "Create a network (prints its ID)",
		Long: `Create a private network: its own bridge, an IPv4 subnet (a free /24 of
10.214.0.0/15 unless --subnet gives one) and an IPv6 ULA /64 (unless
--ipv6=false), a DNS resolver on its gateway that knows its machines by
name, and kernel rules that keep every other network out. --internal: no
traffic leaves the network (no egress, no published ports).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := network.CreateRequest{Name: args[0], Internal: internal}
			if driver != "" && driver != "bridge" {
				return fmt.Errorf("--driver %q: ferry networks are bridges: %w", driver, errdefs.ErrInvalidArgument)
			}
			for _, s := range subnets {
				p, err := netip.ParsePrefix(s)
				if err != nil {
					return fmt.Errorf("--subnet %q: want a CIDR like 10.50.0.0/24 or fd00:50::/64: %w", s, errdefs.ErrInvalidArgument)
				}
				req.Subnets = append(req.Subnets, p)
			}
			for _, s := range gateways {
				a, err := netip.ParseAddr(s)
				if err != nil {
					return fmt.Errorf("--gateway %q: want an IP address: %w", s, errdefs.ErrInvalidArgument)
				}
				req.Gateways = append(req.Gateways, a)
			}
			if cmd.Flags().Changed("ipv6") {
				req.IPv6 = &ipv6
			}
			var err error
			if req.Labels, err = parseLabels(labels, true); err != nil {
				return fmt.Errorf("--%w: %w", err, errdefs.ErrInvalidArgument)
			}
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			n, err := c.CreateNetwork(cmd.Context(), req)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(g.out, n.ID)
			return err
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&subnets, "subnet", nil, "subnet in CIDR form (one IPv4 and one IPv6 at most)")
	f.StringArrayVar(&gateways, "gateway", nil, "gateway address (default: the subnet's first)")
	f.BoolVar(&internal, "internal", false, "no egress and no published ports")
	f.BoolVar(&ipv6, "ipv6", true, "give the network an IPv6 ULA prefix too")
	f.StringArrayVar(&labels, "label", nil, "set a label KEY=VALUE (repeatable)")
	f.StringVarP(&driver, "driver", "d", "", "driver (only bridge)")
	return cmd
}
