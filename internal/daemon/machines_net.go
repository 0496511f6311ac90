package daemon

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/network"
)

// openNetwork opens the daemon's networks from its flags: the networks
// recorded by an earlier run come back (bridges, rules, resolvers); with
// none recorded nothing on the host is touched until the first machine
// needs a network. users says which machines a network is configured for
// (set once the machine manager exists).
func openNetwork(ctx context.Context, d *daemon, users *network.Users) (*network.Service, error) {
	cfg := network.Config{NetNS: d.cfg.NetNS, AllowLinkLocal: d.cfg.AllowLinkLocal}
	if port := mirrorPort(d.cfg.MirrorAddr); port != 0 {
		cfg.Served = append(cfg.Served, network.Port{Protocol: "tcp", HostPort: port})
	}
	if d.cfg.Subnet != "" {
		p, err := netip.ParsePrefix(d.cfg.Subnet)
		if err != nil {
			return nil, fmt.Errorf("--subnet %q: want a CIDR like 10.213.0.0/22: %w", d.cfg.Subnet, errdefs.ErrInvalidArgument)
		}
		cfg.Subnet = p
	}
	svc, err := network.Open(ctx, d.db, cfg, network.WithLogger(d.log.With("svc", "network")),
		network.WithUsers(func(ctx context.Context, id, name string) ([]string, error) {
			if *users == nil {
				return nil, nil
			}
			return (*users)(ctx, id, name)
		}))
	if err != nil {
		return nil, err
	}
	d.onClose(func() error { svc.Close(); return nil })
	return svc, nil
}
