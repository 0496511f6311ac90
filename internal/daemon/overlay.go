package daemon

import (
	"context"
	"fmt"
	"net"
	"net/url"

	"github.com/ferryvm/ferry/internal/controlplane"
)

// wireOverlay runs the overlay agent when --join is set: the host's
// cross-host private networks (VXLAN, docs/scale-out.md) follow the
// control plane. Its underlay address is the one the network namespace
// reaches the control plane from.
func wireOverlay(ctx context.Context, d *daemon) error {
	if d.cfg.Join == "" || d.network == nil {
		return nil
	}
	u, err := url.Parse(d.cfg.Join)
	if err != nil {
		return fmt.Errorf("--join %s: %w", d.cfg.Join, err)
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", u.Hostname())
	if err != nil || len(ips) == 0 {
		return fmt.Errorf("--join %s: resolve %s: %w", d.cfg.Join, u.Hostname(), err)
	}
	underlay, err := d.network.UnderlayFor(ips[0].Unmap())
	if err != nil {
		return fmt.Errorf("overlay: the underlay address toward %s: %w", u.Hostname(), err)
	}
	id, err := controlplane.HostID(d.cfg.Root)
	if err != nil {
		return err
	}
	o := &controlplane.OverlayAgent{
		Agent:    &controlplane.Agent{URL: d.cfg.Join, Token: d.cfg.JoinToken, Host: controlplane.Host{ID: id}},
		Underlay: underlay, Networks: d.network, Log: d.log.With("svc", "overlay"),
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); o.Run(ctx) }()
	d.onClose(func() error { cancel(); <-done; return nil })
	d.log.Info("overlay networks follow the control plane", "underlay", underlay)
	return nil
}
