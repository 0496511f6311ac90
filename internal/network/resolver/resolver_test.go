package resolver

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// upstream is a stand-in for the host's resolver on loopback: it answers
// every A question with 192.0.2.1 and counts them.
func upstream(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net.IPv4(192, 0, 2, 1)})
		_ = w.WriteMsg(m)
	})
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: l, Handler: h}} {
		go srv.ActivateAndServe()
		t.Cleanup(func() { srv.Shutdown() })
	}
	return pc.LocalAddr().String()
}

// serve starts s on fresh loopback sockets (UDP and TCP on one port).
func serve(t *testing.T, s *Server) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	s.Serve([]net.PacketConn{pc}, []net.Listener{l})
	t.Cleanup(s.Close)
	return pc.LocalAddr().String()
}

func query(t *testing.T, addr, proto, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: proto}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("query %s %s over %s: %v", name, dns.TypeToString[qtype], proto, err)
	}
	return r
}

func addrs(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		switch a := rr.(type) {
		case *dns.A:
			out = append(out, a.A.String())
		case *dns.AAAA:
			out = append(out, a.AAAA.String())
		}
	}
	slices.Sort(out)
	return out
}

func TestResolver(t *testing.T) {
	s := New(Config{Upstreams: []string{upstream(t)}})
	addr := serve(t, s)
	s.SetRecords([]Record{
		{Name: "web", App: "shop", Aliases: []string{"www", "front"}, IPv4: netip.MustParseAddr("10.214.0.2"), IPv6: netip.MustParseAddr("fd00:1:2:1::2")},
		{Name: "db", App: "shop", IPv4: netip.MustParseAddr("10.214.0.3")},
		{Name: "web2", App: "shop", Aliases: []string{"front"}, IPv4: netip.MustParseAddr("10.214.0.4")},
	})
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
		want  []string
	}{
		{"web", dns.TypeA, dns.RcodeSuccess, []string{"10.214.0.2"}},
		{"WEB", dns.TypeA, dns.RcodeSuccess, []string{"10.214.0.2"}},
		{"web", dns.TypeAAAA, dns.RcodeSuccess, []string{"fd00:1:2:1::2"}},
		{"www", dns.TypeA, dns.RcodeSuccess, []string{"10.214.0.2"}},
		{"web.shop.internal", dns.TypeA, dns.RcodeSuccess, []string{"10.214.0.2"}},
		{"web.shop.internal", dns.TypeAAAA, dns.RcodeSuccess, []string{"fd00:1:2:1::2"}},
		{"www.shop.internal", dns.TypeA, dns.RcodeSuccess, []string{"10.214.0.2"}},
		{"db", dns.TypeAAAA, dns.RcodeSuccess, nil}, // no IPv6: NODATA
		{"db", dns.TypeMX, dns.RcodeSuccess, nil},
		{"front", dns.TypeA, dns.RcodeSuccess, []string{"10.214.0.2", "10.214.0.4"}}, // shared alias
		{"nope.shop.internal", dns.TypeA, dns.RcodeNameError, nil},
		{"example.com", dns.TypeA, dns.RcodeSuccess, []string{"192.0.2.1"}}, // forwarded
	} {
		for _, proto := range []string{"udp", "tcp"} {
			r := query(t, addr, proto, tc.name, tc.qtype)
			if r.Rcode != tc.rcode || !slices.Equal(addrs(r), tc.want) {
				t.Errorf("%s %s over %s: rcode %s answers %v; want %s %v", tc.name, dns.TypeToString[tc.qtype], proto,
					dns.RcodeToString[r.Rcode], addrs(r), dns.RcodeToString[tc.rcode], tc.want)
			}
			if tc.rcode == dns.RcodeSuccess && tc.name != "example.com" {
				if !r.Authoritative {
					t.Errorf("%s: not authoritative", tc.name)
				}
				for _, rr := range r.Answer {
					if rr.Header().Ttl != TTL {
						t.Errorf("%s: TTL %d, want %d", tc.name, rr.Header().Ttl, TTL)
					}
				}
			}
		}
	}
	// A stopped machine is forgotten at once.
	s.SetRecords([]Record{{Name: "db", App: "shop", IPv4: netip.MustParseAddr("10.214.0.3")}})
	if r := query(t, addr, "udp", "web", dns.TypeA); r.Rcode != dns.RcodeNameError || len(r.Answer) != 0 {
		t.Errorf("web after its removal: %s %v (a single label is never forwarded)", dns.RcodeToString[r.Rcode], r.Answer)
	}
	if r := query(t, addr, "udp", "web.shop.internal", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Errorf("web.shop.internal after removal: %s", dns.RcodeToString[r.Rcode])
	}
}

// TestResolverDig asks with dig (BIND's client), not only miekg's.
func TestResolverDig(t *testing.T) {
	dig := prereq.Tool(t, "dig")
	s := New(Config{Upstreams: []string{upstream(t)}})
	addr := serve(t, s)
	s.SetRecords([]Record{{Name: "api", App: "a", IPv4: netip.MustParseAddr("10.214.1.9"), IPv6: netip.MustParseAddr("fd00::9")}})
	host, port, _ := net.SplitHostPort(addr)
	for _, tc := range []struct{ args, want string }{
		{"api.a.internal A", "10.214.1.9"},
		{"api AAAA", "fd00::9"},
		{"+tcp api A", "10.214.1.9"},
		{"elsewhere.example A", "192.0.2.1"},
	} {
		args := append([]string{"@" + host, "-p", port, "+short", "+tries=1", "+time=2"}, strings.Fields(tc.args)...)
		out, err := exec.Command(dig, args...).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != tc.want {
			t.Errorf("dig %s: %q, %v; want %s", tc.args, out, err, tc.want)
		}
	}
}

func TestResolverUpstreamDown(t *testing.T) {
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	dead := pc.LocalAddr().String()
	pc.Close()
	s := New(Config{Upstreams: []string{dead}, Timeout: 200e6})
	addr := serve(t, s)
	if r := query(t, addr, "udp", "example.com", dns.TypeA); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("with no upstream: %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
}

// TestResolverAnswersInOrder: a client that asks A and AAAA under one ID
// (busybox's nslookup on a guest with a coarse clock, as under TCG) gets
// the replies in the order it asked, every time: it matches replies to
// questions by ID alone, so a reply that overtook the other would land on
// the wrong question and the machine would seem to have no address.
func TestResolverAnswersInOrder(t *testing.T) {
	s := New(Config{Upstreams: []string{upstream(t)}})
	addr := serve(t, s)
	s.SetRecords([]Record{{Name: "web", App: "default", IPv4: netip.MustParseAddr("10.60.0.2"), IPv6: netip.MustParseAddr("fd00::2")}})
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 512)
	for i := range 300 {
		var batch []byte
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeA, dns.TypeAAAA} {
			m := new(dns.Msg)
			m.SetQuestion("web.default.internal.", qt)
			m.Id = uint16(i)
			b, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(b); err != nil {
				t.Fatal(err)
			}
			batch = append(batch, byte(qt))
		}
		for j, qt := range batch {
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("round %d reply %d: %v", i, j, err)
			}
			r := new(dns.Msg)
			if err := r.Unpack(buf[:n]); err != nil {
				t.Fatal(err)
			}
			if got := r.Question[0].Qtype; got != uint16(qt) || len(r.Answer) != 1 {
				t.Fatalf("round %d reply %d answers %s, want %s first (replies overtook each other)", i, j,
					dns.TypeToString[got], dns.TypeToString[uint16(qt)])
			}
		}
	}
}

// TestResolverForwardsBounded: a guest flooding names the upstream never
// answers holds at most MaxForwards exchanges (goroutines, sockets); the
// rest get SERVFAIL at once, and machines' names still answer.
func TestResolverForwardsBounded(t *testing.T) {
	hole, err := net.ListenPacket("udp", "127.0.0.1:0") // reads nothing, answers nothing
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	s := New(Config{Upstreams: []string{hole.LocalAddr().String()}, Timeout: 3 * time.Second, MaxForwards: 16})
	addr := serve(t, s)
	s.SetRecords([]Record{{Name: "web", App: "a", IPv4: netip.MustParseAddr("10.60.0.2")}})
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 400
	replies := make(chan int, n)
	go func() { // read as they come: a full receive buffer would drop replies
		buf := make([]byte, 512)
		for {
			k, err := c.Read(buf)
			if err != nil {
				close(replies)
				return
			}
			r := new(dns.Msg)
			if r.Unpack(buf[:k]) == nil {
				replies <- r.Rcode
			}
		}
	}()
	base := runtime.NumGoroutine()
	for i := range n {
		m := new(dns.Msg)
		m.SetQuestion(fmt.Sprintf("q%d.example.", i), dns.TypeA)
		b, _ := m.Pack()
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		if i%20 == 19 {
			time.Sleep(5 * time.Millisecond) // within the server's socket buffer
		}
	}
	flooded := runtime.NumGoroutine()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second)) // under the upstream timeout
	servfail := 0
	for rc := range replies {
		if rc == dns.RcodeServerFailure {
			servfail++
		}
	}
	if servfail < n-16-20 { // a few datagrams may be lost under load
		t.Errorf("%d of %d flooded questions got SERVFAIL at once; want all but the 16 in flight", servfail, n)
	}
	if flooded > base+16+20 {
		t.Errorf("%d goroutines while flooded (%d before): forwarding is not bounded", flooded, base)
	}
	if r := query(t, addr, "udp", "web", dns.TypeA); len(addrs(r)) != 1 {
		t.Errorf("a machine's name while flooded: %v", addrs(r))
	}
}

// TestResolverViews: a client with a view (a machine on several networks)
// also finds its view's names, over UDP and TCP; another client does not;
// the zone's answer wins a name both hold.
func TestResolverViews(t *testing.T) {
	s := New(Config{Upstreams: []string{upstream(t)}})
	addr := serve(t, s)
	s.SetRecords([]Record{{Name: "web", App: "a", IPv4: netip.MustParseAddr("10.60.0.2")}})
	s.SetViews(map[netip.Addr][]Record{netip.MustParseAddr("127.0.0.1"): {
		{Name: "db", App: "a", IPv4: netip.MustParseAddr("10.61.0.2")},
		{Name: "web", App: "a", IPv4: netip.MustParseAddr("10.61.0.9")},
	}})
	ask := func(from, proto, name string) (int, []string) {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), dns.TypeA)
		d := &net.Dialer{Timeout: 2 * time.Second}
		if proto == "udp" {
			d.LocalAddr = &net.UDPAddr{IP: net.ParseIP(from)}
		} else {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
		}
		r, _, err := (&dns.Client{Net: proto, Dialer: d}).Exchange(m, addr)
		if err != nil {
			t.Fatalf("%s from %s: %v", name, from, err)
		}
		return r.Rcode, addrs(r)
	}
	for _, proto := range []string{"udp", "tcp"} {
		if rc, got := ask("127.0.0.1", proto, "db.a.internal"); rc != dns.RcodeSuccess || !slices.Equal(got, []string{"10.61.0.2"}) {
			t.Errorf("db from the client with the view over %s: %s %v", proto, dns.RcodeToString[rc], got)
		}
		if rc, got := ask("127.0.0.2", proto, "db"); rc != dns.RcodeNameError {
			t.Errorf("db from another client over %s: %s %v", proto, dns.RcodeToString[rc], got)
		}
		if _, got := ask("127.0.0.1", proto, "web"); !slices.Equal(got, []string{"10.60.0.2"}) {
			t.Errorf("web from the client with the view over %s: %v, want the zone's", proto, got)
		}
	}
	s.SetViews(nil)
	if rc, _ := ask("127.0.0.1", "udp", "db"); rc != dns.RcodeNameError {
		t.Errorf("db after the view went: %s", dns.RcodeToString[rc])
	}
}

// TestResolverTCPBounded: a guest holding many idle TCP connections gets
// at most MaxTCPConns served (goroutines, descriptors); UDP still answers.
func TestResolverTCPBounded(t *testing.T) {
	s := New(Config{Upstreams: []string{upstream(t)}})
	addr := serve(t, s)
	s.SetRecords([]Record{{Name: "web", App: "a", IPv4: netip.MustParseAddr("10.60.0.2")}})
	base := runtime.NumGoroutine()
	const n = 3 * MaxTCPConns
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	time.Sleep(300 * time.Millisecond) // let the server accept what it will
	if g := runtime.NumGoroutine(); g > base+MaxTCPConns+20 {
		t.Errorf("%d goroutines with %d idle TCP connections (%d before): not bounded", g, n, base)
	}
	if r := query(t, addr, "udp", "web", dns.TypeA); len(addrs(r)) != 1 {
		t.Errorf("web over UDP while TCP is full: %v", addrs(r))
	}
}
