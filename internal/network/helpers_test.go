package network

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// requireNetAdmin skips unless the test can create network namespaces and
// program them: root, ip (iproute2), nft (nftables), nsenter and
// /dev/net/tun.
func requireNetAdmin(t *testing.T) {
	t.Helper()
	prereq.Root(t, "CAP_NET_ADMIN, to create network namespaces")
	prereq.Tools(t, "ip", "nft", "nsenter")
	prereq.TUN(t)
}

// testNetNS creates a fresh netns (deleted with everything in it when the
// test ends).
func testNetNS(t *testing.T) ns { return ns{prereq.NetNS(t)} }

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func testDB(t *testing.T) *bbolt.DB {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Update(initBuckets); err != nil {
		t.Fatal(err)
	}
	return db
}

// newTestService opens a service in a fresh netns (the daemon's), with
// upstreams on loopback only.
func newTestService(t *testing.T, cfg Config, opts ...Option) *Service {
	t.Helper()
	requireNetAdmin(t)
	cfg.NetNS = testNetNS(t).name
	if cfg.Upstreams == nil {
		cfg.Upstreams = []string{"127.0.0.1:1"}
	}
	s, err := Open(context.Background(), testDB(t), cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// state is what the service created in its namespace: links, addresses
// and the nftables ruleset, for before/after comparisons.
type state struct {
	Links   []string
	Addrs   string
	Ruleset string
}

func snapshot(t *testing.T, s *Service) state {
	t.Helper()
	links, err := s.linkNames()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(links)
	rules, err := s.ns.run(context.Background(), "", "nft", "list", "ruleset")
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := s.ns.run(context.Background(), "", "ip", "-br", "addr")
	if err != nil {
		t.Fatal(err)
	}
	// Addresses by link, without the operational state (carrier comes and
	// goes as ports join and leave).
	var al []string
	for _, l := range strings.Split(strings.TrimSpace(string(addrs)), "\n") {
		if f := strings.Fields(l); len(f) >= 2 {
			al = append(al, strings.Join(append(f[:1:1], f[2:]...), " "))
		}
	}
	return state{Links: links, Addrs: strings.Join(al, "\n"), Ruleset: string(rules)}
}

func (s state) equal(o state) bool {
	return slices.Equal(s.Links, o.Links) && s.Ruleset == o.Ruleset && s.Addrs == o.Addrs
}

// String shows a state compactly: links, addresses, and the ruleset's
// lines that are elements or rules.
func (s state) String() string {
	return fmt.Sprintf("links %v\naddrs:\n%s\nruleset %d bytes", s.Links, s.Addrs, len(s.Ruleset))
}

// diff is what changed from s to o, line by line.
func (s state) diff(o state) string {
	var out []string
	lines := func(x state) []string {
		return append(append([]string{"links " + strings.Join(x.Links, " ")}, strings.Split(x.Addrs, "\n")...), strings.Split(x.Ruleset, "\n")...)
	}
	a, b := lines(s), lines(o)
	for _, l := range a {
		if !slices.Contains(b, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range b {
		if !slices.Contains(a, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// guest is a stand-in for a machine: a fresh netns whose eth0 is one end of
// a veth pair; the other end takes the TAP's name and place on the bridge
// (the TAP is deleted), so it is a bridge port under exactly the TAP's rules
// — and the netns can send whatever it likes, as a hostile guest can.
type guest struct {
	ns
	e Endpoint
}

func plugGuest(t *testing.T, s *Service, e Endpoint, bridge string) *guest {
	t.Helper()
	g := &guest{ns: testNetNS(t), e: e}
	if err := s.deleteLink(e.Tap); err != nil {
		t.Fatal(err)
	}
	ipCmd(t, "-n", s.cfg.NetNS, "link", "add", e.Tap, "type", "veth", "peer", "name", "eth0", "netns", g.name)
	ipCmd(t, "-n", s.cfg.NetNS, "link", "set", e.Tap, "master", bridge, "up")
	ipCmd(t, "-n", g.name, "link", "set", "eth0", "address", e.MAC)
	ipCmd(t, "-n", g.name, "addr", "add", e.IPv4.String(), "dev", "eth0")
	if e.IPv6.IsValid() {
		ipCmd(t, "-n", g.name, "addr", "add", e.IPv6.String(), "dev", "eth0", "nodad")
	}
	ipCmd(t, "-n", g.name, "link", "set", "eth0", "up")
	ipCmd(t, "-n", g.name, "route", "add", "default", "via", e.Gateway.String())
	if e.Gateway6.IsValid() {
		ipCmd(t, "-n", g.name, "-6", "route", "add", "default", "via", e.Gateway6.String())
	}
	return g
}

// serveTCP answers every connection to addr inside n with greeting.
func serveTCP(t *testing.T, n ns, addr, greeting string) {
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
			io.WriteString(c, greeting)
			c.Close()
		}
	}()
}

// serveUDP answers every datagram to addr inside n with greeting.
func serveUDP(t *testing.T, n ns, addr, greeting string) {
	t.Helper()
	var u net.PacketConn
	if err := n.do(func() (err error) {
		u, err = net.ListenPacket("udp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			_, from, err := u.ReadFrom(buf)
			if err != nil {
				return
			}
			u.WriteTo([]byte(greeting), from)
		}
	}()
}

// dial connects from inside n to addr over network ("tcp" or "udp") and
// returns what the server says, or the error.
func dial(n ns, network, addr string) (string, error) {
	var got string
	err := n.do(func() error {
		c, err := net.DialTimeout(network, addr, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if network == "udp" {
			if _, err := c.Write([]byte("ping")); err != nil {
				return err
			}
			buf := make([]byte, 512)
			k, err := c.Read(buf)
			got = string(buf[:k])
			return err
		}
		b, err := io.ReadAll(c)
		got = string(b)
		return err
	})
	return got, err
}

// reach asserts that addr answers want from n; unreach that it does not.
func reach(t *testing.T, n ns, network, addr, want string) {
	t.Helper()
	got, err := dial(n, network, addr)
	if err != nil || got != want {
		t.Errorf("%s %s from %s: %q, %v; want %q", network, addr, n.name, got, err, want)
	}
}

func unreach(t *testing.T, n ns, network, addr, why string) {
	t.Helper()
	if got, err := dial(n, network, addr); err == nil {
		t.Errorf("%s: %s %s from %s answered %q", why, network, addr, n.name, got)
	}
}

// inNS runs a program inside n (nsenter joins the network namespace
// alone; `ip netns exec` would copy the host's mounts).
func inNS(n ns, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=/var/run/netns/" + n.name, "--"}, args...)...)
}

// ping reports whether one ICMP echo from n to addr is answered.
func ping(n ns, addr string) bool { return inNS(n, "ping", "-c", "1", "-W", "1", addr).Run() == nil }

func hostPort(a fmt.Stringer, port int) string { return net.JoinHostPort(a.String(), fmt.Sprint(port)) }
