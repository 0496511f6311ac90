package network

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/network/resolver"
)

// Cross-host private networks (Fly's 6PN) over VXLAN. A network that spans
// hosts has one VNI, the same subnets on every host and, on each host, its
// own gateway and address range (so two hosts never hand out one address).
// On each host the network's bridge gets a VXLAN port (fx-<VNI in hex>)
// with no learning and no flooding: every remote machine is a static FDB
// entry (its MAC → its host's underlay address) and a permanent neighbour
// entry (its addresses → its MAC) that the VXLAN device answers ARP and
// neighbour solicitations from (proxy). Unknown destinations go nowhere.
// The control plane hands each host these lists; SetOverlays makes the
// kernel and the resolvers match them.

// VXLANPort is the UDP port VXLAN uses (IANA).
const VXLANPort = 4789

// vxlanOverhead is what VXLAN adds to a frame over IPv4 (outer IP 20, UDP
// 8, VXLAN 8, inner Ethernet 14); IPv6 underlays add 20 more.
const vxlanOverhead = 50

// overlayPrefix marks the VXLAN devices SetOverlays owns.
const overlayPrefix = "fx-"

// Overlay is one network's cross-host part on this host, as the control
// plane gives it. With Subnet set, SetOverlays creates the local network
// when it is missing (named Network, for App, with both subnets, this
// host's gateways and IPRange) and refuses one that exists with other
// subnets; without, the network must exist.
type Overlay struct {
	Network  string       `json:"network"` // the local network's name (or ID)
	App      string       `json:"app,omitempty"`
	VNI      uint32       `json:"vni"`
	Subnet   netip.Prefix `json:"subnet,omitzero"`
	Subnet6  netip.Prefix `json:"subnet6,omitzero"`
	Gateway  netip.Addr   `json:"gateway,omitzero"`  // this host's
	Gateway6 netip.Addr   `json:"gateway6,omitzero"` // this host's
	IPRange  netip.Prefix `json:"ip_range,omitzero"` // this host's part of Subnet
	Peers    []Peer       `json:"peers,omitempty"`
}

// Peer is another host on an overlay network: where its VXLAN endpoint is
// and its machines on the network.
type Peer struct {
	Host     string          `json:"host"`
	Underlay netip.Addr      `json:"underlay"`
	Machines []RemoteMachine `json:"machines,omitempty"`
}

// RemoteMachine is a machine's endpoint on another host: what this host's
// kernel needs to reach it (MAC, addresses) and its resolver to name it.
type RemoteMachine struct {
	Name    string     `json:"name"`
	App     string     `json:"app,omitempty"` // default: the network's app
	Aliases []string   `json:"aliases,omitempty"`
	MAC     string     `json:"mac"`
	IPv4    netip.Addr `json:"ipv4,omitzero"`
	IPv6    netip.Addr `json:"ipv6,omitzero"`
}

// OverlayDevice is the VXLAN device of vni.
func OverlayDevice(vni uint32) string { return fmt.Sprintf("%s%06x", overlayPrefix, vni) }

// SetOverlays makes this host's overlays exactly ovs, with local as this
// host's underlay (VXLAN source) address: a VXLAN device per overlay on its
// network's bridge, the FDB and neighbour entries of every remote machine
// (stale ones deleted), ferry's overlay nftables table (VXLAN accepted
// only from the peers' underlay addresses, never forwarded for guests),
// and the remote machines' names in the network's resolver. VXLAN devices
// of overlays no longer given are deleted. The kernel side outlives the
// daemon, so machines keep reaching each other while it restarts.
func (s *Service) SetOverlays(ctx context.Context, local netip.Addr, ovs []Overlay) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	key, _ := json.Marshal(struct {
		L netip.Addr
		O []Overlay
	}{local, ovs})
	if string(key) == s.overlayKey && time.Since(s.overlayAt) < overlayRefresh {
		return nil // what the kernel has; checked again every overlayRefresh
	}
	s.overlayKey, s.underlay = "", local
	if len(ovs) > 0 && !local.IsValid() {
		return fmt.Errorf("overlay: this host's underlay address (VXLAN's source) is not set: %w", errdefs.ErrInvalidArgument)
	}
	h, err := s.ns.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	mtu := underlayMTU(h, local)
	type plan struct {
		ov  Overlay
		net *Network
	}
	var plans []plan
	var errs []error // one overlay's failure leaves the others working
	vnis := map[uint32]string{}
overlays:
	for _, ov := range ovs {
		if ov.VNI == 0 || ov.VNI >= 1<<24 {
			errs = append(errs, fmt.Errorf("overlay %s: VNI %d is not in 1-16777215: %w", ov.Network, ov.VNI, errdefs.ErrInvalidArgument))
			continue
		}
		if other, ok := vnis[ov.VNI]; ok {
			errs = append(errs, fmt.Errorf("overlay: VNI %d given to both %s and %s: %w", ov.VNI, other, ov.Network, errdefs.ErrInvalidArgument))
			continue
		}
		for _, p := range ov.Peers {
			if !p.Underlay.IsValid() || p.Underlay.Is4() != local.Is4() {
				errs = append(errs, fmt.Errorf("overlay %s: peer %s has underlay address %v, not one of this host's family (%s): %w",
					ov.Network, p.Host, p.Underlay, local, errdefs.ErrInvalidArgument))
				continue overlays
			}
		}
		n, err := s.overlayNetwork(ctx, ov, mtu)
		if err != nil {
			errs = append(errs, fmt.Errorf("overlay %s: %w", ov.Network, err))
			continue
		}
		vnis[ov.VNI] = ov.Network
		plans = append(plans, plan{ov, n})
	}
	keep := map[string]bool{}
	remote := map[string][]resolver.Record{}
	for _, p := range plans {
		dev := OverlayDevice(p.ov.VNI)
		keep[dev] = true
		vx, err := s.ensureVXLAN(h, dev, p.ov.VNI, local, mtu, p.net.Bridge)
		if err == nil {
			err = syncOverlayEntries(h, vx, p.ov.Peers)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("overlay %s: %w", p.net.Name, err))
			continue
		}
		for _, peer := range p.ov.Peers {
			for _, m := range peer.Machines {
				app := cmp.Or(m.App, p.net.App)
				remote[p.net.ID] = append(remote[p.net.ID], resolver.Record{
					Name: m.Name, App: app, Aliases: m.Aliases, IPv4: m.IPv4, IPv6: m.IPv6})
			}
		}
	}
	links, err := h.LinkList()
	if err != nil {
		return err
	}
	for _, l := range links {
		if name := l.Attrs().Name; strings.HasPrefix(name, overlayPrefix) && l.Type() == "vxlan" && !keep[name] {
			if err := h.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
				return fmt.Errorf("overlay: delete %s: %w", name, err)
			}
		}
	}
	rules := OverlayRules{Table: s.overlayTable(), Devices: slices.Sorted(maps.Keys(keep))}
	for _, p := range plans {
		for _, peer := range p.ov.Peers {
			rules.Peers = append(rules.Peers, peer.Underlay)
		}
	}
	if _, err := s.ns.run(ctx, rules.Script(), "nft", "-f", "-"); err != nil {
		return fmt.Errorf("overlay nftables: %w", err)
	}
	s.remote = remote
	err = errors.Join(append(errs, s.refreshDNS())...)
	if err == nil {
		s.overlayKey, s.overlayAt = string(key), time.Now()
	}
	return err
}

// overlayRefresh is how long SetOverlays trusts the kernel to hold lists it
// applied: the same lists again within it cost nothing, after it they are
// applied again (a table or device deleted by hand comes back).
const overlayRefresh = 30 * time.Second

func (s *Service) overlayTable() string { return s.cfg.Table + "_overlay" }

// overlayNetwork finds ov's local network, creating it when ov says how.
func (s *Service) overlayNetwork(ctx context.Context, ov Overlay, mtu int) (*Network, error) {
	nets, err := s.networks()
	if err != nil {
		return nil, err
	}
	for _, n := range nets {
		if n.Name != ov.Network && n.ID != ov.Network {
			continue
		}
		if ov.Subnet.IsValid() && (n.Subnet != ov.Subnet.Masked() || n.Subnet6 != ov.Subnet6.Masked() || n.IPRange != ov.IPRange.Masked()) {
			return nil, fmt.Errorf("network %s exists on this host with subnets %s %s and range %s, not the control plane's %s %s and %s: "+
				"remove it (ferry network rm %s) so the host can join the overlay: %w",
				n.Name, n.Subnet, n.Subnet6, n.IPRange, ov.Subnet, ov.Subnet6, ov.IPRange, n.Name, errdefs.ErrConflict)
		}
		return n, nil
	}
	if !ov.Subnet.IsValid() {
		return nil, notFound(ov.Network)
	}
	req := CreateRequest{Name: ov.Network, App: ov.App, Subnets: []netip.Prefix{ov.Subnet}, IPRange: ov.IPRange, MTU: mtu,
		Labels: map[string]string{"ferry.overlay.vni": fmt.Sprint(ov.VNI)}}
	if ov.App != "" {
		req.Labels["ferry.app"] = ov.App
	}
	if ov.Gateway.IsValid() {
		req.Gateways = append(req.Gateways, ov.Gateway)
	}
	if ov.Subnet6.IsValid() {
		req.Subnets = append(req.Subnets, ov.Subnet6)
		if ov.Gateway6.IsValid() {
			req.Gateways = append(req.Gateways, ov.Gateway6)
		}
	} else {
		off := false
		req.IPv6 = &off
	}
	return s.create(ctx, req)
}

// underlayMTU is the MTU a VXLAN device over local can carry: the MTU of
// the link holding local less VXLAN's overhead (1450 on a 1500 underlay).
func underlayMTU(h *netlink.Handle, local netip.Addr) int {
	mtu := 1500
	if addrs, err := h.AddrList(nil, netlink.FAMILY_ALL); err == nil {
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == local {
				if l, err := h.LinkByIndex(a.LinkIndex); err == nil {
					mtu = l.Attrs().MTU
				}
			}
		}
	}
	if local.Is6() {
		return mtu - vxlanOverhead - 20
	}
	return mtu - vxlanOverhead
}

// ensureVXLAN creates (or recreates, when its VNI, source, MTU or port
// differ) dev on bridge, without learning, with ARP/ND proxying, and sets
// it up.
func (s *Service) ensureVXLAN(h *netlink.Handle, dev string, vni uint32, local netip.Addr, mtu int, bridge string) (*netlink.Vxlan, error) {
	br, err := h.LinkByName(bridge)
	if err != nil {
		return nil, fmt.Errorf("bridge %s: %w", bridge, err)
	}
	if l, err := h.LinkByName(dev); err == nil {
		vx, ok := l.(*netlink.Vxlan)
		var src netip.Addr
		if ok {
			src, _ = netip.AddrFromSlice(vx.SrcAddr)
		}
		if !ok || vx.VxlanId != int(vni) || src.Unmap() != local || vx.Port != VXLANPort || vx.Learning || !vx.Proxy || vx.MTU != mtu {
			if err := h.LinkDel(l); err != nil {
				return nil, fmt.Errorf("delete %s: %w", dev, err)
			}
		}
	}
	l, err := h.LinkByName(dev)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return nil, err
		}
		vx := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: dev, MTU: mtu}, VxlanId: int(vni),
			SrcAddr: net.IP(local.AsSlice()), Port: VXLANPort, Learning: false, Proxy: true}
		if err := h.LinkAdd(vx); err != nil {
			return nil, fmt.Errorf("vxlan %s (VNI %d): %w", dev, vni, err)
		}
		if l, err = h.LinkByName(dev); err != nil {
			return nil, err
		}
	}
	if l.Attrs().MasterIndex != br.Attrs().Index {
		if err := h.LinkSetMaster(l, br); err != nil {
			return nil, fmt.Errorf("%s to bridge %s: %w", dev, bridge, err)
		}
	}
	// Frames that came in over VXLAN never go back out of it: the other
	// hosts are not reachable through one another (split horizon).
	if err := h.LinkSetHairpin(l, false); err != nil {
		return nil, fmt.Errorf("%s: %w", dev, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return nil, fmt.Errorf("%s up: %w", dev, err)
	}
	return l.(*netlink.Vxlan), nil
}

// syncOverlayEntries makes vx's static FDB entries (MAC → underlay) and
// permanent neighbour entries (address → MAC) exactly the peers' machines.
func syncOverlayEntries(h *netlink.Handle, vx *netlink.Vxlan, peers []Peer) error {
	idx := vx.Attrs().Index
	type fdbKey struct {
		mac string
		dst netip.Addr
	}
	fdb := map[fdbKey]bool{}
	neigh := map[netip.Addr]string{}
	for _, p := range peers {
		for _, m := range p.Machines {
			hw, err := net.ParseMAC(m.MAC)
			if err != nil || len(hw) != 6 {
				return fmt.Errorf("machine %s on %s: MAC %q: %w", m.Name, p.Host, m.MAC, errdefs.ErrInvalidArgument)
			}
			fdb[fdbKey{hw.String(), p.Underlay}] = true
			for _, a := range []netip.Addr{m.IPv4, m.IPv6} {
				if a.IsValid() {
					neigh[a] = hw.String()
				}
			}
			if ll, ok := eui64(hw.String()); ok {
				neigh[ll] = hw.String()
			}
		}
	}
	have, err := h.NeighList(idx, unix.AF_BRIDGE)
	if err != nil {
		return fmt.Errorf("fdb of %s: %w", vx.Name, err)
	}
	for _, e := range have {
		if e.Flags&netlink.NTF_SELF == 0 || e.State&netlink.NUD_PERMANENT == 0 {
			continue
		}
		dst, _ := netip.AddrFromSlice(e.IP)
		k := fdbKey{e.HardwareAddr.String(), dst.Unmap()}
		if fdb[k] {
			delete(fdb, k)
			continue
		}
		if err := h.NeighDel(&e); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("fdb %s del %s: %w", vx.Name, e.HardwareAddr, err)
		}
	}
	for k := range fdb {
		hw, _ := net.ParseMAC(k.mac)
		e := &netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
			State: netlink.NUD_PERMANENT | netlink.NUD_NOARP, IP: net.IP(k.dst.AsSlice()), HardwareAddr: hw}
		if err := h.NeighAppend(e); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("fdb %s add %s dst %s: %w", vx.Name, k.mac, k.dst, err)
		}
	}
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		have, err := h.NeighList(idx, fam)
		if err != nil {
			return fmt.Errorf("neighbours of %s: %w", vx.Name, err)
		}
		for _, e := range have {
			a, _ := netip.AddrFromSlice(e.IP)
			a = a.Unmap()
			if mac, ok := neigh[a]; ok && mac == e.HardwareAddr.String() && e.State&netlink.NUD_PERMANENT != 0 {
				continue
			}
			if err := h.NeighDel(&e); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("neighbour %s del %s: %w", vx.Name, a, err)
			}
		}
	}
	for a, mac := range neigh {
		hw, _ := net.ParseMAC(mac)
		fam := unix.AF_INET
		if a.Is6() {
			fam = unix.AF_INET6
		}
		e := &netlink.Neigh{LinkIndex: idx, Family: fam, State: netlink.NUD_PERMANENT, IP: net.IP(a.AsSlice()), HardwareAddr: hw}
		if err := h.NeighSet(e); err != nil {
			return fmt.Errorf("neighbour %s %s → %s: %w", vx.Name, a, mac, err)
		}
	}
	return nil
}

// OverlayRules is the overlay's nftables table as data (`table inet
// T_overlay`, apart from ferry's own so each is replaced whole on its own):
// VXLAN (UDP 4789) is accepted only from the peers' underlay addresses, and
// no host forwards VXLAN, so a guest cannot inject frames into any
// network (its packet would leave masqueraded with its host's underlay
// address, which its peers accept). With no device the table is removed.
type OverlayRules struct {
	Table   string
	Devices []string
	Peers   []netip.Addr
}

// Script renders the rules as an nft -f script.
func (r OverlayRules) Script() string {
	var b strings.Builder
	fmt.Fprintf(&b, "add table inet %[1]s\ndelete table inet %[1]s\n", r.Table)
	if len(r.Devices) == 0 {
		return b.String()
	}
	var p4, p6 []string
	for _, a := range r.Peers {
		if a.Is4() {
			p4 = append(p4, a.String())
		} else {
			p6 = append(p6, a.String())
		}
	}
	fmt.Fprintf(&b, "table inet %s {\n", r.Table)
	set(&b, "set", "peers4", "ipv4_addr", "", p4)
	set(&b, "set", "peers6", "ipv6_addr", "", p6)
	fmt.Fprintf(&b, `	chain input {
		type filter hook input priority filter - 10; policy accept;
		udp dport %[1]d meta nfproto ipv4 ip saddr != @peers4 drop comment "VXLAN only from peer hosts"
		udp dport %[1]d meta nfproto ipv6 ip6 saddr != @peers6 drop
	}
	chain forward {
		type filter hook forward priority filter - 10; policy accept;
		udp dport %[1]d drop comment "no host forwards VXLAN: guests cannot inject frames into a network"
	}
}
`, VXLANPort)
	return b.String()
}

// OverlayMachines are this host's machines on the given networks (by
// name), as the other hosts of an overlay need them: what it reports to
// the control plane.
func (s *Service) OverlayMachines(ctx context.Context, networks []string) (map[string][]RemoteMachine, error) {
	want := map[string]bool{}
	for _, n := range networks {
		want[n] = true
	}
	var ms []*machineRecord
	if err := s.db.View(func(tx *bbolt.Tx) (err error) {
		ms, err = allMachines(tx)
		return err
	}); err != nil {
		return nil, err
	}
	out := map[string][]RemoteMachine{}
	for _, m := range ms {
		for _, e := range m.endpoints() {
			if !want[e.Network] {
				continue
			}
			out[e.Network] = append(out[e.Network], RemoteMachine{Name: e.Name, App: e.App, Aliases: slices.Clone(e.Aliases),
				MAC: e.MAC, IPv4: e.IPv4.Addr(), IPv6: e.IPv6.Addr()})
		}
	}
	for _, rs := range out {
		slices.SortFunc(rs, func(a, b RemoteMachine) int { return cmp.Compare(a.Name, b.Name) })
	}
	return out, nil
}

// UnderlayFor is the address this host's network namespace sends from
// toward dst (the kernel's route choice): the host's underlay address when
// dst is the control plane.
func (s *Service) UnderlayFor(dst netip.Addr) (netip.Addr, error) {
	h, err := s.ns.handle()
	if err != nil {
		return netip.Addr{}, err
	}
	defer h.Close()
	routes, err := h.RouteGet(net.IP(dst.AsSlice()))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("route to %s: %w", dst, err)
	}
	for _, r := range routes {
		if a, ok := netip.AddrFromSlice(r.Src); ok && a.IsValid() && !a.IsUnspecified() {
			return a.Unmap(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no source address toward %s: %w", dst, errdefs.ErrUnavailable)
}

// AppOverlay tells the creation of an app's default network the app's
// cross-host network, or nil when the app has none (its network is then
// this host's alone).
type AppOverlay func(ctx context.Context, app string) (*Overlay, error)

// SetAppOverlay makes app networks ask f first: a machine of an app that
// spans hosts, started before the overlays' first sync, gets the control
// plane's subnets and this host's range at once, not a network of this
// host's that the overlay would then refuse.
func (s *Service) SetAppOverlay(f AppOverlay) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appOverlay = f
}

// appOverlayNetwork creates app's network from its overlay, or returns nil
// when there is none.
func (s *Service) appOverlayNetwork(ctx context.Context, app string) (*Network, error) {
	if s.appOverlay == nil || AppNetworkName(app) == DefaultNetwork {
		return nil, nil
	}
	ov, err := s.appOverlay(ctx, app)
	if err != nil {
		return nil, fmt.Errorf("app %s's cross-host network: %w", app, err)
	}
	if ov == nil {
		return nil, nil
	}
	mtu := 0
	if s.underlay.IsValid() {
		h, err := s.ns.handle()
		if err != nil {
			return nil, err
		}
		mtu = underlayMTU(h, s.underlay)
		h.Close()
	}
	return s.overlayNetwork(ctx, *ov, mtu)
}
