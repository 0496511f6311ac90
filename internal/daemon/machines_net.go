package daemon

import (
	"fmt"
	"net/netip"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/network"
)

// openNetwork opens the machines' network from the daemon's flags. Opening
// touches nothing on the host: network sets itself up on the first machine
// start (or at reconcile when earlier machines left records).
func openNetwork(d *daemon) (*network.Network, error) {
	cfg := network.Config{NetNS: d.cfg.NetNS}
	if d.cfg.Subnet != "" {
		p, err := netip.ParsePrefix(d.cfg.Subnet)
		if err != nil {
			return nil, fmt.Errorf("--subnet %q: want a CIDR like 10.213.0.0/22: %w", d.cfg.Subnet, errdefs.ErrInvalidArgument)
		}
		cfg.Subnet = p
	}
	return network.Open(d.db, cfg, network.WithLogger(d.log.With("svc", "network")))
}
