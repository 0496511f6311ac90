package network

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// Gateway is where one network's guests reach the host: its bridge's
// addresses. ferry's resolver answers DNS there; other daemon services
// (the registry mirror) serve the ports of Config.Served there — the only
// ports of the host a guest reaches besides DNS and published ones —
// on sockets opened with Listen or ListenPacket.
type Gateway struct {
	NetworkID string     `json:"network_id"`
	Network   string     `json:"network"` // name
	Bridge    string     `json:"bridge"`
	IPv4      netip.Addr `json:"ipv4"`
	IPv6      netip.Addr `json:"ipv6,omitzero"` // zero: the network has no IPv6
	Internal  bool       `json:"internal,omitempty"`
}

func gatewayOf(n *Network) Gateway {
	g := Gateway{NetworkID: n.ID, Network: n.Name, Bridge: n.Bridge, IPv4: n.Gateway, Internal: n.Internal}
	if n.IPv6() {
		g.IPv6 = n.Gateway6
	}
	return g
}

// Addrs are the gateway's addresses, IPv4 first.
func (g Gateway) Addrs() []netip.Addr {
	out := []netip.Addr{g.IPv4}
	if g.IPv6.IsValid() {
		out = append(out, g.IPv6)
	}
	return out
}

// Gateways lists every network's gateway, by network name.
func (s *Service) Gateways(ctx context.Context) ([]Gateway, error) {
	nets, err := s.List(ctx, ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("network gateways: %w", err)
	}
	out := make([]Gateway, 0, len(nets))
	for _, n := range nets {
		out = append(out, gatewayOf(n))
	}
	return out, nil
}

// WatchGateways calls fn with every network's gateway now (up true), then
// as networks are created (up true, once the gateway's addresses are on
// its bridge) and removed (up false, before the bridge goes), until ctx is
// done. fn runs with the service's lock held: it must return quickly and
// call no Service method but Listen and ListenPacket.
func (s *Service) WatchGateways(ctx context.Context, fn func(g Gateway, up bool)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	nets, err := s.networks()
	if err != nil {
		return fmt.Errorf("network gateways: %w", err)
	}
	for _, n := range nets {
		fn(gatewayOf(n), true)
	}
	w := &gatewayWatch{ctx: ctx, fn: fn}
	s.watches = append(s.watches, w)
	context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.watches = slices.DeleteFunc(s.watches, func(o *gatewayWatch) bool { return o == w })
	})
	return nil
}

type gatewayWatch struct {
	ctx context.Context
	fn  func(Gateway, bool)
}

// gatewayChanged tells the watchers (s.mu held).
func (s *Service) gatewayChanged(n *Network, up bool) {
	for _, w := range s.watches {
		if w.ctx.Err() == nil { // (AfterFunc may not have run yet)
			w.fn(gatewayOf(n), up)
		}
	}
}

// Listen opens a TCP listener on addr ("10.214.0.1:5000") in the
// service's network namespace, where the gateways are.
func (s *Service) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := s.ns.do(func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return l, nil
}

// ListenPacket opens a UDP socket on addr in the service's network
// namespace.
func (s *Service) ListenPacket(network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := s.ns.do(func() (err error) {
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return pc, nil
}
