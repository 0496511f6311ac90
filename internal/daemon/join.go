package daemon

import (
	"context"
	"fmt"
	"os"

	"github.com/ferryvm/ferry/internal/controlplane"
	"github.com/ferryvm/ferry/internal/errdefs"
)

// wireJoin runs the control plane agent when --join is set: the host
// registers its capacity and renews its lease until the daemon stops.
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
	name, _ := os.Hostname()
	a := &controlplane.Agent{
		URL: d.cfg.Join, Token: d.cfg.JoinToken, Log: d.log,
		Host: controlplane.Host{ID: id, Name: name, Addr: "http://" + d.cfg.APIAddr, Size: size, Free: free},
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
