package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// bridgePrefix marks the bridges of networks other than the default one
// (whose bridge is Config.Bridge); Reconcile deletes only links with a
// ferry prefix that no record names.
const bridgePrefix = "fb-"

func isOurBridge(name string) bool {
	return len(name) == len(bridgePrefix)+12 && name[:3] == bridgePrefix
}

// setupHost sets what every network needs once per namespace: forwarding
// for both families. Turning IPv6 forwarding on stops the kernel accepting
// router advertisements on interfaces with accept_ra=1, so those are moved
// to 2 (accept even when forwarding) first: the host keeps its SLAAC
// addresses and default route.
func (s *Service) setupHost() error {
	if s.hostDone {
		return nil
	}
	if err := s.ns.sysctl("1", "net", "ipv4", "ip_forward"); err != nil {
		return err
	}
	if b, err := s.ns.readSysctl("net", "ipv6", "conf", "all", "forwarding"); err == nil && b != "1" {
		dirs, _ := filepath.Glob("/proc/sys/net/ipv6/conf/*/accept_ra")
		_ = s.ns.do(func() error {
			for _, d := range dirs {
				if v, err := os.ReadFile(d); err == nil && len(v) > 0 && v[0] == '1' {
					_ = os.WriteFile(d, []byte("2"), 0o600)
				}
			}
			return nil
		})
		if err := s.ns.sysctl("1", "net", "ipv6", "conf", "all", "forwarding"); err != nil {
			return err
		}
	}
	s.hostDone = true
	return nil
}

// ensureBridge creates n's bridge if missing and gives it the gateway
// addresses (IPv6 without duplicate address detection, so the resolver can
// bind it at once), route_localnet (127.0.0.1 published ports leave through
// it; raw_prerouting keeps 127/8 from coming in), ARP answers only for its
// own addresses, no router advertisements accepted.
func (s *Service) ensureBridge(n *Network) error {
	h, err := s.ns.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(n.Bridge)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return err
		}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: n.Bridge}}
		if err := h.LinkAdd(br); err != nil {
			return fmt.Errorf("bridge %s: %w", n.Bridge, err)
		}
		if link, err = h.LinkByName(n.Bridge); err != nil {
			return err
		}
	}
	if _, ok := link.(*netlink.Bridge); !ok {
		return fmt.Errorf("%s exists and is a %s, not a bridge: %w", n.Bridge, link.Type(), errdefs.ErrConflict)
	}
	for _, key := range [][]string{
		{"1", "net", "ipv4", "conf", n.Bridge, "route_localnet"},
		{"1", "net", "ipv4", "conf", n.Bridge, "arp_ignore"},
		{"2", "net", "ipv4", "conf", n.Bridge, "arp_announce"},
		{"0", "net", "ipv6", "conf", n.Bridge, "accept_ra"},
	} {
		if err := s.ns.sysctl(key[0], key[1:]...); err != nil && key[2] == "ipv4" {
			return err
		}
	}
	addrs := []netip.Prefix{netip.PrefixFrom(n.Gateway, n.Subnet.Bits())}
	if n.IPv6() {
		addrs = append(addrs, netip.PrefixFrom(n.Gateway6, n.Subnet6.Bits()))
	}
	for _, p := range addrs {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrReplace(link, a); err != nil {
			return fmt.Errorf("bridge %s address %s: %w", n.Bridge, p, err)
		}
	}
	if n.MTU != 0 && link.Attrs().MTU != n.MTU {
		if err := h.LinkSetMTU(link, n.MTU); err != nil {
			return fmt.Errorf("bridge %s MTU %d: %w", n.Bridge, n.MTU, err)
		}
	}
	return h.LinkSetUp(link)
}

// plugTap creates (or re-opens) e's TAP, enslaves it to bridge and sets it
// up; it returns the open TAP and the bridge's MTU (the guest's).
func (s *Service) plugTap(e Endpoint, bridge string) (*os.File, int, error) {
	f, err := openTap(s.ns, e.Tap, s.cfg.TapOwner)
	if err != nil {
		return nil, 0, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
		}
	}()
	h, err := s.ns.handle()
	if err != nil {
		return nil, 0, err
	}
	defer h.Close()
	tap, err := h.LinkByName(e.Tap)
	if err != nil {
		return nil, 0, fmt.Errorf("tap %s: %w", e.Tap, err)
	}
	br, err := h.LinkByName(bridge)
	if err != nil {
		return nil, 0, fmt.Errorf("bridge %s: %w", bridge, err)
	}
	if err := h.LinkSetMaster(tap, br); err != nil {
		return nil, 0, fmt.Errorf("tap %s to bridge %s: %w", e.Tap, bridge, err)
	}
	if err := h.LinkSetUp(tap); err != nil {
		return nil, 0, fmt.Errorf("tap %s up: %w", e.Tap, err)
	}
	ok = true
	return f, br.Attrs().MTU, nil
}

// deleteLink deletes a TAP or bridge; a missing one is fine.
func (s *Service) deleteLink(name string) error {
	h, err := s.ns.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return err
	}
	if err := h.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// linkNames lists the namespace's links.
func (s *Service) linkNames() ([]string, error) {
	h, err := s.ns.handle()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(links))
	for _, l := range links {
		out = append(out, l.Attrs().Name)
	}
	return out, nil
}

// hostRoutes are the namespace's IPv4 routes that are not ferry's, for new
// networks to avoid.
func (s *Service) hostRoutes(nets []*Network) []netip.Prefix {
	h, err := s.ns.handle()
	if err != nil {
		return nil
	}
	defer h.Close()
	routes, err := h.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		p, ok := netip.AddrFromSlice(r.Dst.IP.To4())
		ones, _ := r.Dst.Mask.Size()
		if !ok || ones == 0 {
			continue
		}
		pp := netip.PrefixFrom(p, ones)
		if !overlapsAny(pp, nets) {
			out = append(out, pp)
		}
	}
	return out
}
