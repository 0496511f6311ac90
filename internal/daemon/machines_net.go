package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/machine"
	"github.com/ferryvm/ferry/internal/network"
)

// machineNetwork returns the machines' network. It is set up lazily, on the
// first machine start (or at reconcile when earlier machines left records),
// so a daemon that never runs a machine never touches the host's network.
func machineNetwork(ctx context.Context, d *daemon) (machine.Network, error) {
	cfg := network.Config{NetNS: d.cfg.NetNS}
	if d.cfg.Subnet != "" {
		p, err := netip.ParsePrefix(d.cfg.Subnet)
		if err != nil {
			return nil, fmt.Errorf("--subnet %q: want a CIDR like 10.213.0.0/22: %w", d.cfg.Subnet, errdefs.ErrInvalidArgument)
		}
		cfg.Subnet = p
	}
	n := &machineNet{db: d.db, cfg: cfg, opts: []network.Option{network.WithLogger(d.log.With("svc", "network"))}}
	return n, nil
}

// machineNet adapts *network.Network to machine.Network.
type machineNet struct {
	db   *bbolt.DB
	cfg  network.Config
	opts []network.Option

	mu sync.Mutex
	nw *network.Network
}

func (n *machineNet) get(ctx context.Context) (*network.Network, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.nw != nil {
		return n.nw, nil
	}
	nw, err := network.New(ctx, n.db, n.cfg, n.opts...)
	if err != nil {
		return nil, fmt.Errorf("machine network: %w", err)
	}
	n.nw = nw
	return nw, nil
}

// inUse reports whether the network is set up or holds records, i.e.
// whether Release and Reconcile have anything to do.
func (n *machineNet) inUse() bool {
	n.mu.Lock()
	up := n.nw != nil
	n.mu.Unlock()
	if up {
		return true
	}
	used := false
	_ = n.db.View(func(tx *bbolt.Tx) error {
		if top := tx.Bucket([]byte("network")); top != nil {
			if b := top.Bucket([]byte("machines")); b != nil {
				k, _ := b.Cursor().First()
				used = k != nil
			}
		}
		return nil
	})
	return used
}

func (n *machineNet) Attach(ctx context.Context, id string, ports []machine.PortMapping) (*machine.Attachment, error) {
	nw, err := n.get(ctx)
	if err != nil {
		return nil, err
	}
	var req []network.Port
	for _, p := range ports {
		req = append(req, network.Port{HostPort: uint16(p.HostPort), GuestPort: uint16(p.GuestPort), Proto: p.Protocol})
	}
	a, err := nw.Attach(ctx, id, req)
	if err != nil {
		return nil, err
	}
	out := &machine.Attachment{Tap: a.Tap, MAC: a.MAC, Addresses: []string{a.Prefix.String()},
		Gateway: a.Gateway.String(), DNS: a.DNS, File: a.File}
	for _, p := range a.Ports {
		out.Ports = append(out.Ports, machine.PortMapping{Protocol: p.Proto, HostPort: int(p.HostPort), GuestPort: int(p.GuestPort)})
	}
	return out, nil
}

func (n *machineNet) Release(ctx context.Context, id string) error {
	if !n.inUse() {
		return nil
	}
	nw, err := n.get(ctx)
	if err != nil {
		return err
	}
	return nw.Release(ctx, id)
}

func (n *machineNet) Reconcile(ctx context.Context, keep []string) error {
	if !n.inUse() {
		return nil
	}
	nw, err := n.get(ctx)
	if err != nil {
		return err
	}
	return nw.Reconcile(ctx, keep)
}
