package network

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestOverlayRulesScript(t *testing.T) {
	got := OverlayRules{Table: "ferry_overlay"}.Script()
	if got != "add table inet ferry_overlay\ndelete table inet ferry_overlay\n" {
		t.Errorf("no device: %q, want the table removed and nothing else", got)
	}
	got = OverlayRules{Table: "ferry_overlay", Devices: []string{"fx-000064"},
		Peers: []netip.Addr{netip.MustParseAddr("10.99.0.12"), netip.MustParseAddr("10.99.0.11"), netip.MustParseAddr("fd00::1")}}.Script()
	for _, want := range []string{
		"elements = { 10.99.0.11,\n\t\t\t10.99.0.12 }", // sorted: the same state renders the same script
		"elements = { fd00::1 }",
		"udp dport 4789 meta nfproto ipv4 ip saddr != @peers4 drop",
		"udp dport 4789 meta nfproto ipv6 ip6 saddr != @peers6 drop",
		"hook forward priority filter - 10; policy accept;\n\t\tudp dport 4789 drop",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("script lacks %q:\n%s", want, got)
		}
	}
}

// overlayHost is one host of TestOverlayAcrossHosts: a daemon's network
// service in its own namespace, its underlay address on the shared LAN.
type overlayHost struct {
	s        *Service
	underlay netip.Addr
	guests   map[string]*guest // by machine name
}

// TestOverlayAcrossHosts: three hosts, each a namespace with its own
// network service, on one LAN (veth pairs to a bridge in a fourth). Network
// a spans hosts 1 and 2, network b hosts 1 and 3, each with one VNI, one
// subnet and a gateway and address range per host. Machines (namespaces
// plugged in where their TAPs were, as in TestNetworksIsolation) reach the
// machines of their network on other hosts by address (ping both
// families, TCP carrying a megabyte at the overlay's MTU) and by name
// through their own host's resolver, and cannot reach the other network's
// machines. A guest cannot inject VXLAN frames into network b: not
// through its host (no host forwards VXLAN) and not from a LAN address that
// is no peer; the test shows both injections land once the overlay table
// is deleted, so it would catch the rules' loss.
func TestOverlayAcrossHosts(t *testing.T) {
	requireNetAdmin(t)
	ctx := context.Background()
	lan := testNetNS(t)
	ipCmd(t, "-n", lan.name, "link", "add", "br0", "type", "bridge")
	ipCmd(t, "-n", lan.name, "link", "set", "br0", "up")
	plugLAN := func(n ns, i int, addr string) {
		port := fmt.Sprintf("p%d", i)
		ipCmd(t, "-n", lan.name, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", n.name)
		ipCmd(t, "-n", lan.name, "link", "set", port, "master", "br0", "up")
		ipCmd(t, "-n", n.name, "addr", "add", addr+"/24", "dev", "eth0")
		ipCmd(t, "-n", n.name, "link", "set", "eth0", "up")
	}
	hosts := make([]*overlayHost, 3)
	for i := range hosts {
		h := &overlayHost{s: newTestService(t, Config{}), underlay: netip.MustParseAddr(fmt.Sprintf("10.99.0.%d", 11+i)), guests: map[string]*guest{}}
		plugLAN(h.s.ns, i, h.underlay.String())
		hosts[i] = h
	}
	outsider := testNetNS(t)
	plugLAN(outsider, 9, "10.99.0.66")

	type spec struct {
		name      string
		vni       uint32
		sub, sub6 netip.Prefix
		on        []int // hosts
	}
	nets := []spec{
		{"a", 100, netip.MustParsePrefix("10.230.0.0/16"), netip.MustParsePrefix("fdaa:0:0:1::/64"), []int{0, 1}},
		{"b", 200, netip.MustParsePrefix("10.231.0.0/16"), netip.MustParsePrefix("fdaa:0:0:2::/64"), []int{0, 2}},
	}
	gw := map[[2]int]*Network{} // (net, host) → the network there
	for ni, n := range nets {
		for _, hi := range n.on {
			// Host hi's range is 10.23x.(hi+1).0/24 and its gateway the
			// range's first address; IPv6 twins follow.
			b := n.sub.Addr().As4()
			b[2], b[3] = byte(hi+1), 1
			g4 := netip.AddrFrom4(b)
			probe := &Network{Subnet: n.sub, Subnet6: n.sub6}
			created, err := hosts[hi].s.Create(ctx, CreateRequest{Name: n.name, Subnets: []netip.Prefix{n.sub, n.sub6},
				Gateways: []netip.Addr{g4, ipv6For(probe, g4)}, IPRange: netip.PrefixFrom(g4, 24).Masked()})
			if err != nil {
				t.Fatal(err)
			}
			gw[[2]int{ni, hi}] = created
		}
	}
	// The VXLAN devices first, as a joining host does before its
	// machines start: the bridges take the overlay's MTU, and so do the
	// guests.
	overlaysOf := func(hi int, withPeers bool) []Overlay {
		var out []Overlay
		for ni, n := range nets {
			if _, ok := gw[[2]int{ni, hi}]; !ok {
				continue
			}
			ov := Overlay{Network: n.name, VNI: n.vni}
			for _, pi := range n.on {
				if pi == hi || !withPeers {
					continue
				}
				p := Peer{Host: fmt.Sprint(pi), Underlay: hosts[pi].underlay}
				for name, g := range hosts[pi].guests {
					if g.e.Network == n.name {
						p.Machines = append(p.Machines, RemoteMachine{Name: name, App: "shop", MAC: g.e.MAC, IPv4: g.e.IPv4.Addr(), IPv6: g.e.IPv6.Addr()})
					}
				}
				ov.Peers = append(ov.Peers, p)
			}
			out = append(out, ov)
		}
		return out
	}
	for hi, h := range hosts {
		if err := h.s.SetOverlays(ctx, h.underlay, overlaysOf(hi, false)); err != nil {
			t.Fatal(err)
		}
	}
	machines := []struct {
		name, net string
		host      int
	}{{"a1", "a", 0}, {"a2", "a", 1}, {"b1", "b", 0}, {"b3", "b", 2}}
	for _, m := range machines {
		h := hosts[m.host]
		att, err := h.s.Attach(ctx, AttachRequest{MachineID: m.name, Name: m.name, App: "shop", Networks: []EndpointRequest{{Network: m.net}}})
		if err != nil {
			t.Fatal(err)
		}
		att.Close()
		e := att.Endpoints[0]
		if e.MTU != 1450 {
			t.Errorf("%s: MTU %d, want 1450 (the underlay's 1500 less VXLAN's 50)", m.name, e.MTU)
		}
		n := gw[[2]int{map[string]int{"a": 0, "b": 1}[m.net], m.host}]
		if !n.IPRange.Contains(e.IPv4.Addr()) {
			t.Errorf("%s: address %s outside its host's range %s", m.name, e.IPv4, n.IPRange)
		}
		g := plugGuest(t, h.s, e, n.Bridge)
		ipCmd(t, "-n", g.name, "link", "set", "eth0", "mtu", fmt.Sprint(e.MTU))
		h.guests[m.name] = g
	}
	for hi, h := range hosts {
		if err := h.s.SetOverlays(ctx, h.underlay, overlaysOf(hi, true)); err != nil {
			t.Fatal(err)
		}
	}
	// Applying the same lists again changes nothing and fails nothing.
	if err := hosts[0].s.SetOverlays(ctx, hosts[0].underlay, overlaysOf(0, true)); err != nil {
		t.Fatal(err)
	}
	a1, a2, b1, b3 := hosts[0].guests["a1"], hosts[1].guests["a2"], hosts[0].guests["b1"], hosts[2].guests["b3"]

	for _, c := range []struct{ from, to *guest }{{a1, a2}, {a2, a1}, {b1, b3}, {b3, b1}} {
		for _, addr := range []netip.Addr{c.to.e.IPv4.Addr(), c.to.e.IPv6.Addr()} {
			if !ping(c.from.ns, addr.String()) {
				t.Errorf("%s cannot ping %s at %s across hosts", c.from.e.Name, c.to.e.Name, addr)
			}
		}
	}
	serveBulk(t, a2.ns, hostPort(a2.e.IPv4.Addr(), 8080), 1<<20)
	serveBulk(t, a2.ns, hostPort(a2.e.IPv6.Addr(), 8080), 1<<20)
	for _, addr := range []netip.Addr{a2.e.IPv4.Addr(), a2.e.IPv6.Addr()} {
		if n, err := readAll(a1.ns, hostPort(addr, 8080)); err != nil || n != 1<<20 {
			t.Errorf("a1 → a2 %s: TCP read %d bytes (%v), want 1 MiB", addr, n, err)
		}
	}
	serveTCP(t, b3.ns, hostPort(b3.e.IPv4.Addr(), 8080), "b3")
	reach(t, b1.ns, "tcp", hostPort(b3.e.IPv4.Addr(), 8080), "b3")

	// By name, through each machine's own host's resolver.
	rc, got := lookup(t, a1.ns, a1.e.Gateway, "a2", dns.TypeA)
	wantAddrs(t, "a2 from a1", rc, got, a2.e.IPv4.Addr())
	rc, got = lookup(t, a1.ns, a1.e.Gateway, "a2.shop.internal", dns.TypeAAAA)
	wantAddrs(t, "a2.shop.internal from a1", rc, got, a2.e.IPv6.Addr())
	rc, got = lookup(t, b3.ns, b3.e.Gateway, "b1", dns.TypeA)
	wantAddrs(t, "b1 from b3", rc, got, b1.e.IPv4.Addr())
	if rc, got = lookup(t, a2.ns, a2.e.Gateway, "b3", dns.TypeA); rc != dns.RcodeNameError {
		t.Errorf("b3 from a2 (another network): rcode %d %v, want NXDOMAIN", rc, got)
	}

	// Isolation between the networks holds across hosts.
	for _, from := range []*guest{a1, a2} {
		if ping(from.ns, b3.e.IPv4.Addr().String()) || ping(from.ns, b1.e.IPv4.Addr().String()) {
			t.Errorf("%s (network a) pings a machine of network b", from.e.Name)
		}
		unreach(t, from.ns, "tcp", hostPort(b3.e.IPv4.Addr(), 8080), "network a to network b on another host")
	}

	// Injection: a VXLAN datagram for b's VNI carrying a frame to b3.
	var b3got chan string
	listenInjected := func() {
		b3got = make(chan string, 4)
		var pc net.PacketConn
		if err := b3.do(func() (err error) {
			pc, err = net.ListenPacket("udp4", ":9999")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		go func() {
			buf := make([]byte, 512)
			_ = pc.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, _, err := pc.ReadFrom(buf)
			pc.Close() // before the test listens again
			if err == nil {
				b3got <- string(buf[:n])
			}
			close(b3got)
		}()
	}
	frame := vxlanFrame(200, b3.e.MAC, b3.e.IPv4.Addr(), netip.MustParseAddr("10.231.3.77"), 9999, "injected")
	inject := func(from ns) {
		t.Helper()
		if err := from.do(func() error {
			c, err := net.Dial("udp4", hostPort(hosts[2].underlay, VXLANPort))
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write(frame)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	injected := func() bool { s, ok := <-b3got; return ok && s == "injected" }
	listenInjected()
	inject(a1.ns) // through host 1, a peer of host 3
	if injected() {
		t.Error("a guest on host 1 injected a frame into network b on host 3 through its host")
	}
	listenInjected()
	inject(outsider) // from a LAN address that is no peer
	if injected() {
		t.Error("a LAN address that is no peer injected a frame into network b")
	}
	// Without the overlay tables both land: the checks above catch a loss.
	for _, h := range []*overlayHost{hosts[0], hosts[2]} {
		if _, err := h.s.ns.run(ctx, "delete table inet "+h.s.overlayTable()+"\n", "nft", "-f", "-"); err != nil {
			t.Fatal(err)
		}
	}
	listenInjected()
	inject(a1.ns)
	if !injected() {
		t.Error("with the overlay tables deleted, the injection through host 1 still failed: the test proves nothing")
	}
	listenInjected()
	inject(outsider)
	if !injected() {
		t.Error("with the overlay tables deleted, the outsider's injection still failed: the test proves nothing")
	}

	// A machine gone from the lists is gone from the kernel and the
	// resolver; an overlay gone takes its VXLAN device.
	delete(hosts[1].guests, "a2")
	if err := hosts[0].s.SetOverlays(ctx, hosts[0].underlay, overlaysOf(0, true)); err != nil {
		t.Fatal(err)
	}
	if rc, _ := lookup(t, a1.ns, a1.e.Gateway, "a2", dns.TypeA); rc != dns.RcodeNameError {
		t.Errorf("a2 after it left the peer list: rcode %d, want NXDOMAIN", rc)
	}
	if ping(a1.ns, a2.e.IPv4.Addr().String()) {
		t.Error("a1 still reaches a2 after a2 left the peer list (its FDB and neighbour entries stayed)")
	}
	if err := hosts[0].s.SetOverlays(ctx, hosts[0].underlay, nil); err != nil {
		t.Fatal(err)
	}
	links, err := hosts[0].s.linkNames()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if strings.HasPrefix(l, overlayPrefix) {
			t.Errorf("VXLAN device %s left after every overlay went", l)
		}
	}
}

// vxlanFrame is a VXLAN datagram's payload: the VXLAN header for vni and an
// Ethernet frame carrying an IPv4 UDP datagram from src to dst:port.
func vxlanFrame(vni uint32, dstMAC string, dst, src netip.Addr, port uint16, payload string) []byte {
	var b bytes.Buffer
	b.Write([]byte{0x08, 0, 0, 0})
	_ = binary.Write(&b, binary.BigEndian, vni<<8)
	mac, _ := net.ParseMAC(dstMAC)
	b.Write(mac)
	b.Write([]byte{0x02, 0x66, 0, 0, 0, 0x01, 0x08, 0x00})
	ip := make([]byte, 20)
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(payload)))
	s4, d4 := src.As4(), dst.As4()
	copy(ip[12:], s4[:])
	copy(ip[16:], d4[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	b.Write(ip)
	udp := make([]byte, 8)
	binary.BigEndian.PutUint16(udp[0:], 40000)
	binary.BigEndian.PutUint16(udp[2:], port)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	b.Write(udp)
	b.WriteString(payload)
	return b.Bytes()
}

// serveBulk writes size bytes to every connection to addr inside n.
func serveBulk(t *testing.T, n ns, addr string, size int) {
	t.Helper()
	var l net.Listener
	if err := n.do(func() (err error) {
		l, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write(make([]byte, size))
			c.Close()
		}
	}()
}

// readAll connects from inside n to addr and counts what it reads.
func readAll(n ns, addr string) (int64, error) {
	var got int64
	err := n.do(func() error {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		got, err = io.Copy(io.Discard, c)
		return err
	})
	return got, err
}

// TestOverlayCreatesItsNetwork: an overlay with subnets creates its missing
// network (this host's gateways, range and the overlay's MTU, which the
// bridge keeps after a reboot, before any VXLAN port is back); one that
// exists locally with other subnets is refused with one line saying what
// to do, and the other overlays still apply.
func TestOverlayCreatesItsNetwork(t *testing.T) {
	requireNetAdmin(t)
	ctx := context.Background()
	s := newTestService(t, Config{})
	ipCmd(t, "-n", s.cfg.NetNS, "link", "add", "under0", "type", "veth", "peer", "name", "under1")
	ipCmd(t, "-n", s.cfg.NetNS, "addr", "add", "10.99.0.1/24", "dev", "under0")
	ipCmd(t, "-n", s.cfg.NetNS, "link", "set", "under0", "up")
	local := netip.MustParseAddr("10.99.0.1")
	if _, err := s.Create(ctx, CreateRequest{Name: "clash", Subnets: []netip.Prefix{netip.MustParsePrefix("10.50.0.0/24")}}); err != nil {
		t.Fatal(err)
	}
	shop := Overlay{Network: "shop", App: "shop", VNI: 5, Subnet: netip.MustParsePrefix("10.128.0.0/16"), Subnet6: netip.MustParsePrefix("fdcc:0:0:5::/64"),
		Gateway: netip.MustParseAddr("10.128.3.1"), Gateway6: netip.MustParseAddr("fdcc:0:0:5::301"), IPRange: netip.MustParsePrefix("10.128.3.0/24")}
	clash := Overlay{Network: "clash", VNI: 6, Subnet: netip.MustParsePrefix("10.129.0.0/16"), IPRange: netip.MustParsePrefix("10.129.3.0/24")}
	err := s.SetOverlays(ctx, local, []Overlay{clash, shop})
	if err == nil || !strings.Contains(err.Error(), "ferry network rm clash") || strings.Count(err.Error(), "\n") > 0 {
		t.Fatalf("overlay over a local network with other subnets: %v, want one line saying to remove it", err)
	}
	info, err := s.Inspect(ctx, "shop")
	if err != nil {
		t.Fatalf("the shop overlay was not applied beside the refused one: %v", err)
	}
	if info.Subnet != shop.Subnet || info.Subnet6 != shop.Subnet6 || info.Gateway != shop.Gateway || info.Gateway6 != shop.Gateway6 ||
		info.IPRange != shop.IPRange || info.MTU != 1450 || info.App != "shop" {
		t.Fatalf("network shop %+v, want the overlay's subnets, this host's gateways and range, MTU 1450", info.Network)
	}
	links, err := s.linkNames()
	if err != nil {
		t.Fatal(err)
	}
	if !slicesContains(links, OverlayDevice(5)) || slicesContains(links, OverlayDevice(6)) {
		t.Errorf("links %v: want %s and not %s", links, OverlayDevice(5), OverlayDevice(6))
	}
	// A reboot: the bridge comes back from the records without its VXLAN
	// port, and still has the overlay's MTU for machines attached before
	// the first sync.
	s.Close()
	for _, l := range []string{info.Bridge, OverlayDevice(5)} {
		ipCmd(t, "-n", s.cfg.NetNS, "link", "del", l)
	}
	s2, err := Open(ctx, s.db, s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	att, err := s2.Attach(ctx, AttachRequest{MachineID: "m1", Name: "m1", App: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	att.Close()
	if e := att.Endpoints[0]; e.Network != "shop" || e.MTU != 1450 || !shop.IPRange.Contains(e.IPv4.Addr()) || e.IPv4.Addr() == shop.Gateway {
		t.Errorf("app shop's machine after a reboot: %+v, want network shop, MTU 1450, an address of this host's range", e)
	}

	// An app's first machine, before the overlays' first sync, takes its
	// network from the control plane (SetAppOverlay); an app the control
	// plane does not know gets a network of this host's; one it cannot ask
	// about fails with the reason.
	if err := s2.SetOverlays(ctx, local, nil); err != nil {
		t.Fatal(err)
	}
	cart := Overlay{Network: "cart", App: "cart", VNI: 9, Subnet: netip.MustParsePrefix("10.130.0.0/16"),
		Gateway: netip.MustParseAddr("10.130.4.1"), IPRange: netip.MustParsePrefix("10.130.4.0/24")}
	s2.SetAppOverlay(func(_ context.Context, app string) (*Overlay, error) {
		switch app {
		case "cart":
			return &cart, nil
		case "down":
			return nil, fmt.Errorf("control plane unreachable")
		}
		return nil, nil
	})
	for _, c := range []struct {
		app     string
		subnet  netip.Prefix
		mtu     int
		failure string
	}{{app: "cart", subnet: cart.Subnet, mtu: 1450}, {app: "local", mtu: 1500}, {app: "down", failure: "control plane unreachable"}} {
		att, err := s2.Attach(ctx, AttachRequest{MachineID: c.app + "-1", Name: "m", App: c.app})
		if c.failure != "" {
			if err == nil || !strings.Contains(err.Error(), c.failure) {
				t.Errorf("app %s: %v, want the control plane's failure", c.app, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		att.Close()
		e := att.Endpoints[0]
		if e.Network != c.app || e.MTU != c.mtu || (c.subnet.IsValid() && !cart.IPRange.Contains(e.IPv4.Addr())) ||
			(!c.subnet.IsValid() && cart.Subnet.Contains(e.IPv4.Addr())) {
			t.Errorf("app %s's first machine: %+v", c.app, e)
		}
	}
}

func slicesContains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
