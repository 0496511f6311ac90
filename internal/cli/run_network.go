package cli

import (
	"fmt"
	"net/netip"

	"github.com/spf13/pflag"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
)

// runNetFlags are run's network flags (Docker's names).
type runNetFlags struct {
	networks, aliases, addHosts []string
	ip, ip6                     string
}

func (n *runNetFlags) add(fl *pflag.FlagSet) {
	fl.StringArrayVar(&n.networks, "network", nil, "network to join (repeatable; the first is primary; default: the app's network)")
	fl.StringArrayVar(&n.aliases, "network-alias", nil, "another DNS name on the first --network (repeatable)")
	fl.StringVar(&n.ip, "ip", "", "IPv4 address on the first --network")
	fl.StringVar(&n.ip6, "ip6", "", "IPv6 address on the first --network")
	fl.StringArrayVar(&n.addHosts, "add-host", nil, "add an /etc/hosts entry NAME:IP (repeatable)")
}

// endpoints turns the flags into the machine's networks.
func (n *runNetFlags) endpoints() ([]types.EndpointRequest, error) {
	if len(n.networks) == 0 && (len(n.aliases) > 0 || n.ip != "" || n.ip6 != "") {
		return nil, fmt.Errorf("--network-alias, --ip and --ip6 need --network NAME: %w", errdefs.ErrInvalidArgument)
	}
	var out []types.EndpointRequest
	for i, name := range n.networks {
		e := types.EndpointRequest{Network: name}
		if i == 0 {
			e.Aliases = n.aliases
			for _, a := range []struct {
				flag, v string
				dst     *netip.Addr
			}{{"ip", n.ip, &e.IPv4}, {"ip6", n.ip6, &e.IPv6}} {
				if a.v == "" {
					continue
				}
				p, err := netip.ParseAddr(a.v)
				if err != nil {
					return nil, fmt.Errorf("--%s %q: want an IP address: %w", a.flag, a.v, errdefs.ErrInvalidArgument)
				}
				*a.dst = p
			}
		}
		out = append(out, e)
	}
	return out, nil
}
