package network

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// world is two networks × two machines, an internal network with one, and
// an "upstream" namespace beyond the daemon's (the internet, and a cloud
// metadata service at 169.254.169.254), all in namespaces of their own.
type world struct {
	s          *Service
	a, b, in   *Network
	guests     map[string]*guest
	atts       map[string]*Attachment
	upstream   ns
	hostAddr   netip.Addr // the daemon namespace's "LAN" address
	worldAddr  netip.Addr // a server out there
	upstreamNS string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	s := newTestService(t, Config{Upstreams: []string{fakeUpstream(t)}})
	ctx := context.Background()
	w := &world{s: s, guests: map[string]*guest{}, atts: map[string]*Attachment{},
		hostAddr: netip.MustParseAddr("198.51.100.2"), worldAddr: netip.MustParseAddr("198.51.100.1")}
	var err error
	if w.a, err = s.Create(ctx, CreateRequest{Name: "neta"}); err != nil {
		t.Fatal(err)
	}
	if w.b, err = s.Create(ctx, CreateRequest{Name: "netb"}); err != nil {
		t.Fatal(err)
	}
	if w.in, err = s.Create(ctx, CreateRequest{Name: "vault", Internal: true}); err != nil {
		t.Fatal(err)
	}
	// Upstream: a veth from the daemon's namespace to a namespace holding
	// a web server (the world) and a metadata service.
	w.upstream = testNetNS(t)
	d, u := s.cfg.NetNS, w.upstream.name
	ipCmd(t, "-n", d, "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", u)
	ipCmd(t, "-n", d, "addr", "add", "198.51.100.2/24", "dev", "up0")
	ipCmd(t, "-n", d, "link", "set", "up0", "up")
	ipCmd(t, "-n", d, "route", "add", "default", "via", "198.51.100.1")
	ipCmd(t, "-n", u, "addr", "add", "198.51.100.1/24", "dev", "eth0")
	ipCmd(t, "-n", u, "addr", "add", "169.254.169.254/32", "dev", "lo")
	ipCmd(t, "-n", u, "link", "set", "eth0", "up")
	serveTCP(t, w.upstream, ":80", "world")
	// The host's own services: one on every address, one on loopback only.
	serveTCP(t, s.ns, ":2222", "host service")
	serveUDP(t, s.ns, ":2222", "host service")
	serveTCP(t, s.ns, "127.0.0.1:2323", "loopback-only service")

	w.machine(t, "a1", "shop", w.a, []string{"api"}, Port{Protocol: "tcp", HostPort: 8080, GuestPort: 80},
		Port{Protocol: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 8081, GuestPort: 80},
		Port{Protocol: "tcp", HostIP: netip.MustParseAddr("::1"), HostPort: 8082, GuestPort: 80})
	w.machine(t, "a2", "shop", w.a, nil)
	w.machine(t, "b1", "shop", w.b, nil)
	w.machine(t, "b2", "other", w.b, nil)
	w.machine(t, "i1", "shop", w.in, nil)
	return w
}

// machine attaches a machine and puts a guest stand-in on its TAP's port,
// serving "I am NAME" on TCP and UDP port 80.
func (w *world) machine(t *testing.T, name, app string, n *Network, aliases []string, ports ...Port) *guest {
	t.Helper()
	att, err := w.s.Attach(context.Background(), AttachRequest{MachineID: "id-" + name, Name: name, App: app,
		Networks: []EndpointRequest{{Network: n.Name, Aliases: aliases}}, Ports: ports})
	if err != nil {
		t.Fatal(err)
	}
	att.Close()
	g := plugGuest(t, w.s, att.Endpoints[0], n.Bridge)
	serveTCP(t, g.ns, ":80", "I am "+name)
	serveUDP(t, g.ns, ":80", "I am "+name)
	w.guests[name], w.atts[name] = g, att
	return g
}

func (w *world) ip(name string) netip.Addr  { return w.guests[name].e.IPv4.Addr() }
func (w *world) ip6(name string) netip.Addr { return w.guests[name].e.IPv6.Addr() }

// fakeUpstream is the host's resolver, on loopback of the test's own
// namespace: it answers every A question with 192.0.2.53.
func fakeUpstream(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(rw dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A: net.IPv4(192, 0, 2, 53)})
		_ = rw.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

// lookup asks server (inside n) for name's A or AAAA records.
func lookup(t *testing.T, n ns, server netip.Addr, name string, qtype uint16) (int, []string) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	var r *dns.Msg
	err := n.do(func() (err error) {
		r, _, err = (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, net.JoinHostPort(server.String(), "53"))
		return err
	})
	if err != nil {
		return -1, []string{err.Error()}
	}
	var out []string
	for _, rr := range r.Answer {
		switch a := rr.(type) {
		case *dns.A:
			out = append(out, a.A.String())
		case *dns.AAAA:
			out = append(out, a.AAAA.String())
		}
	}
	return r.Rcode, out
}

func wantAddrs(t *testing.T, what string, rcode int, got []string, want ...netip.Addr) {
	t.Helper()
	var ws []string
	for _, a := range want {
		ws = append(ws, a.String())
	}
	wantRcode := dns.RcodeSuccess
	if len(want) == 0 {
		wantRcode = dns.RcodeNameError
	}
	if rcode != wantRcode || !slices.Equal(got, ws) {
		t.Errorf("%s: %s %v; want %s %v", what, dns.RcodeToString[rcode], got, dns.RcodeToString[wantRcode], ws)
	}
}

func TestNetworksIsolation(t *testing.T) {
	requireNetAdmin(t)
	prereq.Tools(t, "ping", "arping")
	w := newWorld(t)
	a2, b1, i1 := w.guests["a2"], w.guests["b1"], w.guests["i1"]

	t.Run("same network", func(t *testing.T) {
		reach(t, a2.ns, "tcp", hostPort(w.ip("a1"), 80), "I am a1")
		reach(t, a2.ns, "udp", hostPort(w.ip("a1"), 80), "I am a1")
		reach(t, a2.ns, "tcp", hostPort(w.ip6("a1"), 80), "I am a1")
		if !ping(a2.ns, w.ip("a1").String()) || !ping(a2.ns, w.ip6("a1").String()) || !ping(a2.ns, w.a.Gateway.String()) {
			t.Error("ping within the network failed")
		}
		reach(t, w.guests["b2"].ns, "tcp", hostPort(w.ip("b1"), 80), "I am b1")
	})
	t.Run("no conntrack within a network", func(t *testing.T) {
		// Bridged frames reach the inet hooks when br_netfilter is loaded:
		// machine-to-machine traffic on one network skips conntrack (it
		// needs none), traffic to the gateway is tracked.
		reach(t, a2.ns, "tcp", hostPort(w.ip("a1"), 80), "I am a1")
		reach(t, a2.ns, "tcp", hostPort(w.ip6("a1"), 80), "I am a1")
		if rc, _ := lookup(t, a2.ns, w.a.Gateway, "a1", dns.TypeA); rc != dns.RcodeSuccess {
			t.Fatalf("DNS on the gateway: rcode %d", rc)
		}
		out, err := w.s.ns.run(context.Background(), "", "cat", "/proc/net/nf_conntrack")
		if err != nil {
			t.Fatal(err)
		}
		ct := string(out)
		if !strings.Contains(ct, "dst="+w.a.Gateway.String()+" ") {
			t.Fatalf("no conntrack entry for DNS to the gateway: the check proves nothing:\n%s", ct)
		}
		for _, dst := range []netip.Addr{w.ip("a1"), w.ip6("a1")} {
			if strings.Contains(ct, "src="+w.ip("a2").String()+" dst="+dst.String()+" ") ||
				strings.Contains(ct, "src="+w.ip6("a2").String()+" dst="+dst.String()+" ") {
				t.Errorf("a2 to a1 (%s) went through conntrack:\n%s", dst, ct)
			}
		}
	})
	t.Run("between networks nothing passes", func(t *testing.T) {
		for _, addr := range []netip.Addr{w.ip("b1"), w.ip6("b1"), w.ip("i1")} {
			unreach(t, a2.ns, "tcp", hostPort(addr, 80), "network a to b")
			unreach(t, a2.ns, "udp", hostPort(addr, 80), "network a to b")
			if ping(a2.ns, addr.String()) {
				t.Errorf("ping %s from network a answered", addr)
			}
		}
		unreach(t, b1.ns, "tcp", hostPort(w.ip("a1"), 80), "network b to a")
		// ARP: the other network's machines and gateway are not on this
		// wire, and the host does not answer ARP for the other bridge's
		// address.
		for _, addr := range []netip.Addr{w.ip("b1"), w.b.Gateway} {
			if err := inNS(a2.ns, "arping", "-c", "1", "-w", "1", "-I", "eth0", addr.String()).Run(); err == nil {
				t.Errorf("ARP for %s answered on network a", addr)
			}
		}
		if err := inNS(a2.ns, "arping", "-c", "1", "-w", "2", "-I", "eth0", w.a.Gateway.String()).Run(); err != nil {
			t.Errorf("ARP for its own gateway: %v", err)
		}
	})
	t.Run("egress and internal", func(t *testing.T) {
		reach(t, a2.ns, "tcp", hostPort(w.worldAddr, 80), "world")
		unreach(t, i1.ns, "tcp", hostPort(w.worldAddr, 80), "internal network egress")
		unreach(t, i1.ns, "tcp", hostPort(w.a.Gateway, 8080), "internal network to a published port")
		rc, got := lookup(t, i1.ns, w.in.Gateway, "i1", dns.TypeA)
		wantAddrs(t, "internal network's own DNS", rc, got, w.ip("i1"))
		// No question leaves an internal network either (a DNS tunnel):
		// its resolver forwards nothing; another network's does.
		if rc, got := lookup(t, i1.ns, w.in.Gateway, "example.com", dns.TypeA); rc != dns.RcodeRefused || len(got) != 0 {
			t.Errorf("internal network's resolver on example.com: %s %v; want REFUSED", dns.RcodeToString[rc], got)
		}
		rc, got = lookup(t, a2.ns, w.a.Gateway, "example.com", dns.TypeA)
		wantAddrs(t, "network a's resolver forwards example.com", rc, got, netip.MustParseAddr("192.0.2.53"))
	})
	t.Run("host services out of reach", func(t *testing.T) {
		for _, addr := range []netip.Addr{w.hostAddr, w.a.Gateway, w.b.Gateway, w.a.Gateway6} {
			unreach(t, a2.ns, "tcp", hostPort(addr, 2222), "a host service")
			unreach(t, a2.ns, "udp", hostPort(addr, 2222), "a host service over UDP")
		}
		reach(t, w.s.ns, "udp", hostPort(w.a.Gateway, 2222), "host service") // it is there
		unreach(t, a2.ns, "tcp", hostPort(w.worldAddr.Next().Next(), 2222), "nothing there")
		unreach(t, a2.ns, "tcp", "169.254.169.254:80", "cloud metadata")
		// What ferry serves is there: DNS on the gateway, published ports on
		// every host address (from other networks too).
		rc, got := lookup(t, a2.ns, w.a.Gateway, "a1", dns.TypeA)
		wantAddrs(t, "DNS on the gateway", rc, got, w.ip("a1"))
		reach(t, a2.ns, "tcp", hostPort(w.a.Gateway, 8080), "I am a1") // hairpin
		reach(t, b1.ns, "tcp", hostPort(w.hostAddr, 8080), "I am a1")
		if rc, _ := lookup(t, a2.ns, w.b.Gateway, "b1", dns.TypeA); rc != -1 {
			t.Errorf("network b's resolver answered a guest of network a (rcode %d)", rc)
		}
	})
	t.Run("link-local when the daemon allows it", func(t *testing.T) {
		w.s.cfg.AllowLinkLocal = true
		defer func() {
			w.s.cfg.AllowLinkLocal = false
			if err := w.s.apply(context.Background()); err != nil {
				t.Fatal(err)
			}
			unreach(t, a2.ns, "tcp", "169.254.169.254:80", "cloud metadata once disallowed again")
		}()
		if err := w.s.apply(context.Background()); err != nil {
			t.Fatal(err)
		}
		reach(t, a2.ns, "tcp", "169.254.169.254:80", "world")
	})
	t.Run("published ports", func(t *testing.T) {
		reach(t, w.s.ns, "tcp", "127.0.0.1:8080", "I am a1")
		reach(t, w.s.ns, "tcp", "127.0.0.1:8081", "I am a1")
		reach(t, w.upstream, "tcp", hostPort(w.hostAddr, 8080), "I am a1")
		unreach(t, w.upstream, "tcp", hostPort(w.hostAddr, 8081), "-p 127.0.0.1 from outside")
		unreach(t, w.s.ns, "tcp", hostPort(w.hostAddr, 8081), "-p 127.0.0.1 on another host address")
		unreach(t, w.s.ns, "tcp", hostPort(w.a.Gateway, 8081), "-p 127.0.0.1 on the gateway")
		reach(t, w.s.ns, "tcp", hostPort(w.a.Gateway6, 8080), "I am a1") // IPv6 too
		reach(t, w.s.ns, "tcp", "[::1]:8080", "I am a1")
		reach(t, w.s.ns, "tcp", "[::1]:8082", "I am a1")
		unreach(t, w.s.ns, "tcp", "127.0.0.1:8082", "-p [::1] on 127.0.0.1")
		unreach(t, w.s.ns, "tcp", hostPort(w.a.Gateway6, 8082), "-p [::1] on another address")
		unreach(t, w.s.ns, "tcp", "[::1]:8081", "-p 127.0.0.1 on [::1]")
	})
	t.Run("hostile guest", func(t *testing.T) { hostile(t, w) })
}

// hostile is a2 misbehaving: every attack fails while the same guest's
// legitimate traffic (checked beside each) works.
func hostile(t *testing.T, w *world) {
	a1, a2 := w.guests["a1"], w.guests["a2"]
	gwMAC := bridgeMAC(t, w.s, w.a.Bridge)
	a1MAC, a2MAC := mac(t, a1.e.MAC), mac(t, a2.e.MAC)

	// Spoofed sources, to a recorder on a1.
	rec := recordUDP(t, a1.ns, ":9999")
	legit4 := udp4Frame(a1MAC, a2MAC, w.ip("a2"), w.ip("a1"), 4000, 9999, []byte("legit"))
	legit6 := udp6Frame(a1MAC, a2MAC, w.ip6("a2"), w.ip6("a1"), 4000, 9999, []byte("legit6"))
	sendFrames(t, a2.ns, "eth0",
		udp4Frame(a1MAC, a2MAC, w.ip("a2").Next().Next().Next(), w.ip("a1"), 4000, 9999, []byte("spoofed ip")),
		udp4Frame(a1MAC, a2MAC, w.ip("b1"), w.ip("a1"), 4000, 9999, []byte("other network's ip")),
		udp4Frame(a1MAC, mac(t, "02:fe:de:ad:be:ef"), w.ip("a2"), w.ip("a1"), 4000, 9999, []byte("spoofed mac")),
		udp4Frame(a1MAC, mac(t, w.guests["b1"].e.MAC), w.ip("a2"), w.ip("a1"), 4000, 9999, []byte("another machine's mac")),
		udp6Frame(a1MAC, a2MAC, netip.MustParseAddr("fd00::bad"), w.ip6("a1"), 4000, 9999, []byte("spoofed ip6")),
		udp6Frame(a1MAC, a2MAC, w.ip6("b1"), w.ip6("a1"), 4000, 9999, []byte("other network's ip6")),
		legit4, legit6)
	if got := rec.wait("legit", "legit6"); !slices.Equal(got, []string{"legit", "legit6"}) {
		t.Errorf("a1 received %q; want only the legitimate datagrams", got)
	}

	// ARP and neighbour spoofing: claim a1's addresses for a2's MAC (and
	// speak with a1's MAC). The host's neighbour entries stay a1's.
	for _, a := range []netip.Addr{w.ip("a1"), w.ip6("a1")} {
		if !ping(w.s.ns, a.String()) {
			t.Fatalf("host cannot ping %s", a)
		}
	}
	time.Sleep(1100 * time.Millisecond) // past the neighbour locktime, so a spoof would take
	spoof := func() {
		sendFrames(t, a2.ns, "eth0",
			arpFrame(a2MAC, 2, a2MAC, w.ip("a1"), w.a.Gateway),
			arpFrame(a2MAC, 1, a2MAC, w.ip("a1"), w.a.Gateway),
			arpFrame(a1MAC, 2, a1MAC, w.ip("a2"), w.a.Gateway),
			neighborAdvert(a2MAC, linkLocal(t, a2.e.MAC), w.ip6("a1"), a2MAC))
		time.Sleep(200 * time.Millisecond)
	}
	spoof()
	if n := neighbor(t, w.s, w.ip("a1"), w.a.Bridge); n != a1.e.MAC {
		t.Errorf("host's ARP entry for a1 is %q after the spoof, want %s", n, a1.e.MAC)
	}
	if n := neighbor(t, w.s, w.ip6("a1"), w.a.Bridge); n != a1.e.MAC {
		t.Errorf("host's neighbour entry for a1's IPv6 is %q after the spoof, want %s", n, a1.e.MAC)
	}
	if n := neighbor(t, w.s, w.ip("a2"), w.a.Bridge); n != "" && n != a2.e.MAC {
		t.Errorf("host's ARP entry for a2 is %q", n)
	}
	if !ping(a2.ns, w.a.Gateway.String()) {
		t.Error("a2's own ARP and ping fail")
	}

	// Duplicate address detection as a weapon: a2 claims, from "::", an
	// address a1 is still testing, so a1 would give it up.
	dadFails := func(last byte) bool {
		b := w.ip6("a1").As16()
		b[15] = last
		x := netip.AddrFrom16(b)
		ipCmd(t, "-n", a1.name, "addr", "add", netip.PrefixFrom(x, 64).String(), "dev", "eth0")
		for range 5 {
			sendFrames(t, a2.ns, "eth0", dadSolicit(a2MAC, x))
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(1500 * time.Millisecond) // past a1's DAD
		out, err := inNS(a1.ns, "ip", "-6", "addr", "show", "dev", "eth0").CombinedOutput()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, x.String()+"/") {
				return strings.Contains(l, "dadfailed")
			}
		}
		t.Fatalf("a1 lost %s:\n%s", x, out)
		return false
	}
	if dadFails(0x7e) {
		t.Error("a2's duplicate address detection for a1's new address made a1 give it up")
	}

	// A rogue router: a2 advertises itself as a default router; a1 (which
	// accepts router advertisements, as a guest's kernel does) must not
	// route through it.
	for _, k := range []string{"all", "eth0"} {
		if err := a1.sysctl("1", "net", "ipv6", "conf", k, "accept_ra"); err != nil {
			t.Fatal(err)
		}
	}
	rogue := func() bool {
		sendFrames(t, a2.ns, "eth0", routerAdvert(a2MAC, linkLocal(t, a2.e.MAC)))
		time.Sleep(300 * time.Millisecond)
		out, err := inNS(a1.ns, "ip", "-6", "route", "show", "default").CombinedOutput()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(string(out), linkLocal(t, a2.e.MAC).String())
	}
	if rogue() {
		t.Error("a1 routes through a2 after a2's router advertisement")
	}

	// The host's loopback through the gateway (CVE-2020-8558): a2 routes
	// 127/8 to the gateway.
	ipCmd(t, "-n", a2.name, "addr", "flush", "dev", "lo") // 127.0.0.1 is no longer a2's own
	ipCmd(t, "-n", a2.name, "route", "add", "127.0.0.0/8", "via", w.a.Gateway.String(), "dev", "eth0")
	for _, k := range []string{"all", "eth0"} {
		if err := a2.sysctl("1", "net", "ipv4", "conf", k, "route_localnet"); err != nil {
			t.Fatal(err)
		}
	}
	unreach(t, a2.ns, "tcp", "127.0.0.1:2323", "the host's loopback through the gateway")
	unreach(t, a2.ns, "tcp", "127.0.0.1:2222", "the host's loopback through the gateway")
	_ = gwMAC

	// The attacks are real: without ferry's rules they succeed.
	withoutRules(t, w.s, func() {
		rec := recordUDP(t, a1.ns, ":9998")
		sendFrames(t, a2.ns, "eth0", udp4Frame(a1MAC, a2MAC, w.ip("b1"), w.ip("a1"), 4000, 9998, []byte("spoofed")))
		if got := rec.wait("spoofed"); len(got) != 1 {
			t.Errorf("without the rules a spoofed source is dropped anyway: the test proves nothing")
		}
		if _, err := dial(a2.ns, "tcp", "127.0.0.1:2323"); err != nil {
			t.Errorf("without the rules the loopback attack fails too (%v): the test proves nothing", err)
		}
		if !dadFails(0x7d) {
			t.Errorf("without the rules a1 ignores a2's DAD probe: the test proves nothing")
		}
		if !rogue() {
			t.Errorf("without the rules a1 ignores a2's router advertisement: the test proves nothing")
		}
		ipCmd(t, "-n", a1.name, "-6", "route", "del", "default", "via", linkLocal(t, a2.e.MAC).String(), "dev", "eth0")
		spoof() // last: it also teaches the bridge that a1's MAC is on a2's port
		if n := neighbor(t, w.s, w.ip("a1"), w.a.Bridge); n != a2.e.MAC {
			t.Errorf("without the rules the ARP spoof does not take (entry %q): the test proves nothing", n)
		}
	})
}

// withoutRules runs fn with ferry's filter chains emptied, then restores
// the rules.
func withoutRules(t *testing.T, s *Service, fn func()) {
	t.Helper()
	flush := ""
	for _, c := range []string{"inet ferry raw_prerouting", "inet ferry guest_input", "bridge ferry prerouting"} {
		flush += "flush chain " + c + "\n"
	}
	if _, err := s.ns.run(context.Background(), flush, "nft", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.apply(context.Background()); err != nil {
			t.Fatal(err)
		}
	}()
	fn()
}

func bridgeMAC(t *testing.T, s *Service, br string) net.HardwareAddr {
	t.Helper()
	h, err := s.ns.handle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(br)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().HardwareAddr
}

func linkLocal(t *testing.T, m string) netip.Addr {
	ll, ok := eui64(m)
	if !ok {
		t.Fatalf("no EUI-64 for %s", m)
	}
	return ll
}

// neighbor is the MAC the host's neighbour table holds for a on dev.
func neighbor(t *testing.T, s *Service, a netip.Addr, dev string) string {
	t.Helper()
	out, err := s.ns.run(context.Background(), "", "ip", "neigh", "show", a.String(), "dev", dev)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(out))
	if i := slices.Index(f, "lladdr"); i >= 0 && i+1 < len(f) {
		return f[i+1]
	}
	return ""
}

// recorder collects the payloads of datagrams to one port.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func recordUDP(t *testing.T, n ns, addr string) *recorder {
	t.Helper()
	var pc net.PacketConn
	if err := n.do(func() (err error) { pc, err = net.ListenPacket("udp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	r := &recorder{}
	go func() {
		buf := make([]byte, 1500)
		for {
			k, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.got = append(r.got, string(buf[:k]))
			r.mu.Unlock()
		}
	}()
	return r
}

// wait returns what arrived once every one of want has (or after 2 s), and
// a little longer, so a late spoofed datagram is seen too.
func (r *recorder) wait(want ...string) []string {
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		ok := true
		for _, w := range want {
			ok = ok && slices.Contains(r.got, w)
		}
		r.mu.Unlock()
		if ok {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.got)
	slices.Sort(out)
	return out
}

var _ = fmt.Sprint
