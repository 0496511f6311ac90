package daemon

import (
	"context"

	"github.com/ferryvm/ferry/internal/machine"
)

// machineNetwork returns the machines' network (nil until internal/network
// is wired: machines then boot without a NIC).
func machineNetwork(ctx context.Context, d *daemon) (machine.Network, error) {
	return nil, nil
}
