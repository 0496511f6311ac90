package daemon

import (
	"context"
	"fmt"
	"net"
	"os"

	"github.com/ferryvm/ferry/internal/controlplane"
	"github.com/ferryvm/ferry/internal/errdefs"
)

// wireJoin runs the control plane agent when --join is set: the host
// registers its capacity, API address and token, renews its lease until
// the daemon stops, and converges its machines (through its own machine
// manager) to the desired set the control plane gives it.
func wireJoin(ctx context.Context, d *daemon) error {
	if d.cfg.Join == "" {
		return nil
	}
	if d.cfg.APIAddr == "" {
		return fmt.Errorf("--join %s needs --api-addr (the control plane reaches the host's API over TCP): %w", d.cfg.Join, errdefs.ErrInvalidArgument)
	}
	id, err := controlplane.HostID(d.cfg.Root)
	if err != nil {
		return err
	}
	size, free, err := controlplane.HostCapacity(d.cfg.Root)
	if err != nil {
		return err
	}
	name := d.cfg.JoinName
	if name == "" {
		name, _ = os.Hostname()
	}
	if _, _, err := net.SplitHostPort(d.cfg.APIAddr); err != nil {
		return fmt.Errorf("--api-addr %s: %v: %w", d.cfg.APIAddr, err, errdefs.ErrInvalidArgument)
	}
	a := &controlplane.Agent{
		URL: d.cfg.Join, Token: d.cfg.JoinToken, Log: d.log.With("svc", "join"), Machines: d.machines,
		Host: controlplane.Host{ID: id, Name: name, Addr: "http://" + d.cfg.APIAddr, UnderlayIP: d.cfg.Underlay,
			APIToken: d.cfg.APIToken, Size: size, Free: free},
		Free: func() controlplane.Capacity {
			_, f, err := controlplane.HostCapacity(d.cfg.Root)
			if err != nil {
				return free
			}
			return f
		},
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	d.onClose(func() error { cancel(); <-done; return nil })
	return nil
}
