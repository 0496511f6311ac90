package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Create makes a network: record, bridge, rules, resolver. Bad input (a
// name that is not a DNS label, a subnet overlapping another network's, a
// gateway outside its subnet) is refused before anything exists; a failure
// after that undoes what was done.
func (s *Service) Create(ctx context.Context, req CreateRequest) (*Network, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.create(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("network create %s: %w", req.Name, err)
	}
	return n.clone(), nil
}

func (s *Service) create(ctx context.Context, req CreateRequest) (*Network, error) {
	if !ValidName(req.Name) {
		return nil, fmt.Errorf("name %q is not a DNS label (letters, digits, '-' and '_', at most 63, starting and ending with a letter or digit): %w",
			req.Name, errdefs.ErrInvalidArgument)
	}
	if req.Name == NoNetwork || req.Name == "host" {
		return nil, fmt.Errorf("name %q is reserved (Docker's --network %s): pick another: %w", req.Name, req.Name, errdefs.ErrInvalidArgument)
	}
	for k := range req.Labels {
		if k == "" {
			return nil, fmt.Errorf("empty label key: %w", errdefs.ErrInvalidArgument)
		}
	}
	n := &Network{Name: req.Name, Internal: req.Internal, App: req.App, Labels: req.Labels, MTU: req.MTU, Created: time.Now().UTC()}
	if req.MTU != 0 && (req.MTU < 1280 || req.MTU > 65535) {
		return nil, fmt.Errorf("MTU %d: want 1280-65535 (IPv6's least): %w", req.MTU, errdefs.ErrInvalidArgument)
	}
	var sub6 netip.Prefix
	for _, p := range req.Subnets {
		switch {
		case p.Addr().Is4() && !n.Subnet.IsValid():
			if err := checkSubnet4(p); err != nil {
				return nil, err
			}
			n.Subnet = p.Masked()
		case p.Addr().Is6() && !sub6.IsValid():
			sub6 = p.Masked()
		default:
			return nil, fmt.Errorf("subnets %v: at most one IPv4 and one IPv6 subnet: %w", req.Subnets, errdefs.ErrInvalidArgument)
		}
	}
	ipv6 := req.IPv6 == nil || *req.IPv6
	if sub6.IsValid() && !ipv6 {
		return nil, fmt.Errorf("IPv6 subnet %s given with IPv6 off: %w", sub6, errdefs.ErrInvalidArgument)
	}
	if req.Name == DefaultNetwork && !n.Subnet.IsValid() {
		n.Subnet = s.cfg.Subnet
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		if id := bkt(tx, bucketNames).Get([]byte(req.Name)); id != nil {
			return fmt.Errorf("network %s already exists: %w", req.Name, errdefs.ErrAlreadyExists)
		}
		nets, err := allNets(tx)
		if err != nil {
			return err
		}
		for _, p := range []netip.Prefix{n.Subnet, sub6} {
			for _, o := range nets {
				if p.IsValid() && (p.Overlaps(o.Subnet) || (o.Subnet6.IsValid() && p.Overlaps(o.Subnet6))) {
					return fmt.Errorf("subnet %s overlaps network %s (%s %s): pick another with --subnet: %w",
						p, o.Name, o.Subnet, o.Subnet6, errdefs.ErrConflict)
				}
			}
		}
		if !n.Subnet.IsValid() {
			if n.Subnet, err = pick4(s.cfg.Pool, s.cfg.PoolBits, nets, s.hostRoutes(nets)); err != nil {
				return err
			}
		}
		if ipv6 && !sub6.IsValid() {
			if sub6, err = pick6(tx, nets); err != nil {
				return err
			}
		}
		if sub6.IsValid() {
			if sub6.Bits() < 8 || 128-sub6.Bits() < 32-n.Subnet.Bits() {
				return fmt.Errorf("IPv6 subnet %s is too small for IPv4 subnet %s (it needs at least %d host bits): %w",
					sub6, n.Subnet, 32-n.Subnet.Bits(), errdefs.ErrInvalidArgument)
			}
			n.Subnet6, n.Gateway6 = sub6, sub6.Addr().Next()
		}
		n.Gateway = n.Subnet.Addr().Next()
		for _, g := range req.Gateways {
			switch {
			case g.Is4() && n.Subnet.Contains(g) && g != n.Subnet.Addr() && g != lastAddr(n.Subnet):
				n.Gateway = g
			case g.Is6() && n.Subnet6.Contains(g) && g != n.Subnet6.Addr():
				n.Gateway6 = g
			default:
				return fmt.Errorf("gateway %s is not a host address of subnet %s %s: %w", g, n.Subnet, n.Subnet6, errdefs.ErrInvalidArgument)
			}
		}
		if r := req.IPRange; r.IsValid() {
			if !r.Addr().Is4() || !n.Subnet.Contains(r.Masked().Addr()) || r.Bits() < n.Subnet.Bits() {
				return fmt.Errorf("ip range %s is not inside IPv4 subnet %s: %w", r, n.Subnet, errdefs.ErrInvalidArgument)
			}
			n.IPRange = r.Masked()
		}
		var id [32]byte
		_, _ = rand.Read(id[:])
		n.ID = hex.EncodeToString(id[:])
		n.Bridge = bridgePrefix + n.ID[:12]
		if req.Name == DefaultNetwork {
			n.Bridge = s.cfg.Bridge
		}
		return putNet(tx, n)
	})
	if err != nil {
		return nil, err
	}
	if err := s.realizeNet(ctx, n); err != nil {
		if uerr := s.dropNet(ctx, n); uerr != nil {
			s.log.Warn("network: undo failed create", "network", n.Name, "err", uerr)
		}
		return nil, err
	}
	s.log.Info("network created", "network", n.Name, "subnet", n.Subnet, "subnet6", n.Subnet6, "bridge", n.Bridge)
	return n, nil
}

// realizeNet makes n true in the kernel: bridge, rules, resolver.
func (s *Service) realizeNet(ctx context.Context, n *Network) error {
	if err := s.setupHost(); err != nil {
		return err
	}
	if err := s.ensureBridge(n); err != nil {
		return err
	}
	if err := s.apply(ctx); err != nil {
		return err
	}
	if err := s.startResolver(n); err != nil {
		return err
	}
	s.gatewayChanged(n, true)
	return nil
}

// dropNet removes n: resolver, record, rules, then the bridge (a crash
// after the record is gone leaves a bridge Reconcile deletes).
func (s *Service) dropNet(ctx context.Context, n *Network) error {
	s.stopResolver(n.ID)
	if err := s.db.Update(func(tx *bbolt.Tx) error { return deleteNet(tx, n) }); err != nil {
		return err
	}
	if err := s.apply(ctx); err != nil {
		return err
	}
	return s.deleteLink(n.Bridge)
}

// Info is a network and the machines on it now.
type Info struct {
	*Network
	Endpoints []Endpoint `json:"endpoints"`
}

// Inspect returns a network (by name, ID or unique ID prefix) and its
// endpoints.
func (s *Service) Inspect(ctx context.Context, ref string) (*Info, error) {
	var info *Info
	err := s.db.View(func(tx *bbolt.Tx) error {
		n, err := lookupNet(tx, ref)
		if err != nil || n == nil {
			return err
		}
		info = &Info{Network: n}
		ms, err := allMachines(tx)
		for _, m := range ms {
			for _, e := range m.endpoints() {
				if e.NetworkID == n.ID {
					info.Endpoints = append(info.Endpoints, e)
				}
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("network inspect %s: %w", ref, err)
	}
	if info == nil {
		return nil, notFound(ref)
	}
	slices.SortFunc(info.Endpoints, func(a, b Endpoint) int { return strings.Compare(a.Name, b.Name) })
	return info, nil
}

// ListOptions filters List: every label given must match (a key with an
// empty value matches any value).
type ListOptions struct {
	Labels map[string]string
	Name   string // substring of the name
}

func (o ListOptions) match(n *Network) bool {
	for k, v := range o.Labels {
		got, ok := n.Labels[k]
		if !ok || (v != "" && got != v) {
			return false
		}
	}
	return o.Name == "" || strings.Contains(n.Name, o.Name)
}

// List returns the networks, by name.
func (s *Service) List(ctx context.Context, opts ListOptions) ([]*Network, error) {
	nets, err := s.networks()
	if err != nil {
		return nil, fmt.Errorf("network ls: %w", err)
	}
	nets = slices.DeleteFunc(nets, func(n *Network) bool { return !opts.match(n) })
	slices.SortFunc(nets, func(a, b *Network) int { return strings.Compare(a.Name, b.Name) })
	return nets, nil
}

// Remove deletes a network no machine is on or configured for; its bridge,
// rules, addresses and resolver go with it.
func (s *Service) Remove(ctx context.Context, ref string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.remove(ctx, ref); err != nil {
		return fmt.Errorf("network rm %s: %w", ref, err)
	}
	return nil
}

func (s *Service) remove(ctx context.Context, ref string) error {
	info, err := s.Inspect(ctx, ref)
	if err != nil {
		return err
	}
	users := map[string]bool{}
	for _, e := range info.Endpoints {
		users[e.Name] = true
	}
	if s.o.users != nil {
		more, err := s.o.users(ctx, info.ID, info.Name)
		if err != nil {
			return err
		}
		for _, u := range more {
			users[u] = true
		}
	}
	if len(users) > 0 {
		names := make([]string, 0, len(users))
		for u := range users {
			names = append(names, u)
		}
		slices.Sort(names)
		return fmt.Errorf("network %s is in use by machines %s: remove them or disconnect them first (ferry network disconnect %s MACHINE): %w",
			info.Name, strings.Join(names, ", "), info.Name, errdefs.ErrConflict)
	}
	s.gatewayChanged(info.Network, false)
	if err := s.dropNet(ctx, info.Network); err != nil {
		return err
	}
	s.log.Info("network removed", "network", info.Name, "bridge", info.Bridge)
	return nil
}

// Prune removes every network no machine uses (matching opts), except the
// default network, and returns their names.
func (s *Service) Prune(ctx context.Context, opts ListOptions) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	nets, err := s.List(ctx, opts)
	if err != nil {
		return nil, err
	}
	var gone []string
	for _, n := range nets {
		if n.Name == DefaultNetwork {
			continue
		}
		err := s.remove(ctx, n.ID)
		switch {
		case err == nil:
			gone = append(gone, n.Name)
		case !errorsIsConflict(err):
			return gone, fmt.Errorf("network prune: %w", err)
		}
	}
	return gone, nil
}

// migrate moves machines of the old one-network layout onto the default
// network (created, with the old bridge and subnet, when there are any).
func (s *Service) migrate(ctx context.Context) error {
	var legacy []legacyRecord
	if err := s.db.Update(func(tx *bbolt.Tx) (err error) {
		legacy, err = takeLegacy(tx)
		return err
	}); err != nil || len(legacy) == 0 {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	def, err := s.appNetwork(ctx, "")
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		for _, l := range legacy {
			if !def.Subnet.Contains(l.IP) {
				continue // the old subnet changed; Reconcile removes the TAP
			}
			r := &machineRecord{MachineID: l.MachineID, Name: l.MachineID, Ports: l.Ports, Endpoints: []endpointRecord{{
				NetworkID: def.ID, Network: def.Name, Tap: l.Tap, MAC: l.MAC,
				IPv4: netip.PrefixFrom(l.IP, def.Subnet.Bits()), Gateway: def.Gateway,
			}}}
			if err := putMachine(tx, r); err != nil {
				return err
			}
		}
		return nil
	})
}
