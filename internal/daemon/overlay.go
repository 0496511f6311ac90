package daemon

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/ferryvm/ferry/internal/controlplane"
	"github.com/ferryvm/ferry/internal/errdefs"
)

// wireOverlay runs the overlay agent when --join is set: the host's
// cross-host private networks (VXLAN, docs/scale-out.md) follow the
// control plane. Its underlay address is the one the network namespace
// reaches the control plane from.
func wireOverlay(ctx context.Context, d *daemon) error {
	if d.cfg.Join == "" || d.network == nil {
		return nil
	}
	underlay, err := underlayAddr(ctx, d)
	if err != nil {
		if d.cfg.Underlay != "" {
			return err
		}
		// The host still joins; only its networks stay on it.
		d.log.Warn("cross-host networks off", "err", err)
		return nil
	}
	id, err := controlplane.HostID(d.cfg.Root)
	if err != nil {
		return err
	}
	o := &controlplane.OverlayAgent{
		Agent:    &controlplane.Agent{URL: d.cfg.Join, Token: d.cfg.JoinToken, Host: controlplane.Host{ID: id}},
		Underlay: underlay, Networks: d.network, Log: d.log.With("svc", "overlay"),
	}
	if o.Agent.Client == nil {
		o.Agent.Client = &http.Client{Timeout: 5 * time.Second}
	}
	d.network.SetAppOverlay(o.AppOverlay)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); o.Run(ctx) }()
	d.onClose(func() error { cancel(); <-done; return nil })
	d.log.Info("overlay networks follow the control plane", "underlay", underlay)
	return nil
}

func underlayAddr(ctx context.Context, d *daemon) (netip.Addr, error) {
	if d.cfg.Underlay != "" {
		a, err := netip.ParseAddr(d.cfg.Underlay)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("--underlay %q: want this host's IP address: %w", d.cfg.Underlay, errdefs.ErrInvalidArgument)
		}
		return a, nil
	}
	u, err := url.Parse(d.cfg.Join)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("--join %s: %w: %w", d.cfg.Join, err, errdefs.ErrInvalidArgument)
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", u.Hostname())
	if err != nil || len(ips) == 0 {
		return netip.Addr{}, fmt.Errorf("--join %s: resolve %s (or give --underlay): %w", d.cfg.Join, u.Hostname(), err)
	}
	a, err := d.network.UnderlayFor(ips[0].Unmap())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("overlay: the underlay address toward %s (give --underlay): %w", u.Hostname(), err)
	}
	if a.IsLoopback() {
		return netip.Addr{}, fmt.Errorf("overlay: the control plane %s is reached over loopback, which other hosts cannot use for VXLAN: give --underlay: %w",
			u.Hostname(), errdefs.ErrInvalidArgument)
	}
	return a, nil
}
