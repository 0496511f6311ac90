package cli

import (
	"fmt"
	"net/netip"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/errdefs"
)

func newNetworkConnectCmd(g *globals) *cobra.Command {
	var app, ip, ip6 string
	var aliases []string
	cmd := &cobra.Command{
		Use:   "connect [--alias NAME] [--ip IP] NETWORK MACHINE",
		Short: "Put a stopped machine on a network too (from its next start)",
		Long: `Put MACHINE on NETWORK as one more NIC, from its next start. A running
machine is refused: a micro-VM's NICs are fixed at boot, so stop it first.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := api.ConnectRequest{App: app, Machine: args[1], Aliases: aliases}
			for _, a := range []struct {
				flag, v string
				dst     *netip.Addr
			}{{"ip", ip, &req.IPv4}, {"ip6", ip6, &req.IPv6}} {
				if a.v == "" {
					continue
				}
				p, err := netip.ParseAddr(a.v)
				if err != nil {
					return fmt.Errorf("--%s %q: want an IP address: %w", a.flag, a.v, errdefs.ErrInvalidArgument)
				}
				*a.dst = p
			}
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			_, err = c.ConnectNetwork(cmd.Context(), args[0], req)
			return err
		},
	}
	appFlag(cmd, &app)
	cmd.Flags().StringArrayVar(&aliases, "alias", nil, "another DNS name for the machine on this network (repeatable)")
	cmd.Flags().StringVar(&ip, "ip", "", "IPv4 address on the network (default: the next free one)")
	cmd.Flags().StringVar(&ip6, "ip6", "", "IPv6 address on the network (default: the IPv4 address's twin)")
	return cmd
}

func newNetworkDisconnectCmd(g *globals) *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use:   "disconnect NETWORK MACHINE",
		Short: "Take a stopped machine off a network (not its last one)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			_, err = c.DisconnectNetwork(cmd.Context(), args[0], api.ConnectRequest{App: app, Machine: args[1]})
			return err
		},
	}
	appFlag(cmd, &app)
	return cmd
}
