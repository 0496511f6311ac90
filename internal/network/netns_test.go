package network

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// requireNetAdmin skips unless the test can create network namespaces and
// program them: root, ip (iproute2), nft (nftables) and /dev/net/tun.
func requireNetAdmin(t *testing.T) {
	t.Helper()
	prereq.Root(t, "CAP_NET_ADMIN, to create network namespaces")
	prereq.Tools(t, "ip", "nft")
	prereq.TUN(t)
}

// newTestNetwork sets a network up in a fresh netns.
func newTestNetwork(t *testing.T, cfg Config) (*Network, string) {
	t.Helper()
	requireNetAdmin(t)
	cfg.NetNS = prereq.NetNS(t)
	nw, err := New(context.Background(), testDB(t), cfg, WithResolvConf("/nonexistent"))
	if err != nil {
		t.Fatal(err)
	}
	return nw, cfg.NetNS
}

// state is what the network side created in a namespace: links (with
// master and state) and the nftables ruleset, for before/after comparisons.
type state struct {
	Links   []string
	Ruleset string
}

func snapshot(t *testing.T, nw *Network) state {
	t.Helper()
	h, err := nw.ns.handle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var s state
	for _, l := range links {
		s.Links = append(s.Links, l.Attrs().Name)
	}
	sort.Strings(s.Links)
	out, err := nw.ns.run(context.Background(), "", "nft", "list", "ruleset")
	if err != nil {
		t.Fatal(err)
	}
	s.Ruleset = string(out)
	return s
}

func (s state) equal(o state) bool { return slices.Equal(s.Links, o.Links) && s.Ruleset == o.Ruleset }

func linkOf(t *testing.T, nw *Network, name string) netlink.Link {
	t.Helper()
	h, err := nw.ns.handle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		return nil
	}
	return l
}

// rootBridge describes DefaultBridge in the root namespace ("" when there
// is none): a user's daemon may own one; tests must leave it as it was.
func rootBridge() string {
	l, err := netlink.LinkByName(DefaultBridge)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("index %d, %s", l.Attrs().Index, l.Attrs().HardwareAddr)
}

func TestNetworkSetupInNetNS(t *testing.T) {
	rootBefore := rootBridge()
	nw, name := newTestNetwork(t, Config{})
	br := linkOf(t, nw, DefaultBridge)
	if br == nil || br.Type() != "bridge" {
		t.Fatalf("bridge %s missing in netns %s", DefaultBridge, name)
	}
	h, _ := nw.ns.handle()
	addrs, _ := h.AddrList(br, netlink.FAMILY_V4)
	h.Close()
	if len(addrs) != 1 || addrs[0].IPNet.String() != "10.213.0.1/22" {
		t.Errorf("bridge addresses %v, want 10.213.0.1/22", addrs)
	}
	rules := snapshot(t, nw).Ruleset
	for _, want := range []string{
		"table ip ferry",
		"ip saddr 10.213.0.0/22 ip daddr != 10.213.0.0/22 masquerade",
		"fib daddr type local dnat ip to meta l4proto . th dport map @ports",
	} {
		if !strings.Contains(rules, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, rules)
		}
	}
	// The root namespace was not touched: a bridge of that name there
	// (a user's daemon's) is the one that was there before.
	if after := rootBridge(); after != rootBefore {
		t.Errorf("bridge %s in the root namespace changed: before %q, after %q", DefaultBridge, rootBefore, after)
	}
	if got := nw.DNS(); !slices.Equal(got, FallbackDNS) {
		t.Errorf("dns %v, want fallback %v with no resolv.conf", got, FallbackDNS)
	}
	// New again (daemon restart) is idempotent and keeps the ruleset.
	before := snapshot(t, nw)
	if _, err := New(context.Background(), nw.db, Config{NetNS: name}); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, nw); !after.equal(before) {
		t.Errorf("second New changed state:\n%+v\n%+v", before, after)
	}
	// Teardown removes the bridge and the table.
	if err := nw.Teardown(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := snapshot(t, nw)
	if slices.Contains(s.Links, DefaultBridge) || strings.Contains(s.Ruleset, "table ip ferry") {
		t.Errorf("after teardown: %+v", s)
	}
}

func TestAttachRelease(t *testing.T) {
	nw, _ := newTestNetwork(t, Config{})
	ctx := context.Background()
	before := snapshot(t, nw)

	a, err := nw.Attach(ctx, "m1", []Port{{HostPort: 18080, GuestPort: 80, Protocol: "tcp"}, {GuestPort: 53, Protocol: "udp"}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.File.Close()
	b, err := nw.Attach(ctx, "m2", nil)
	if err != nil {
		t.Fatal(err)
	}
	b.File.Close()
	if a.IP() == b.IP() || !nw.cfg.Subnet.Contains(a.IP()) || a.Gateway.String() != "10.213.0.1" || a.Addresses[0].Bits() != 22 {
		t.Fatalf("attachments %+v %+v", a, b)
	}
	if a.Ports[1].HostPort == 0 {
		t.Errorf("-p 53/udp got no host port: %+v", a.Ports)
	}
	tap := linkOf(t, nw, a.Tap)
	br := linkOf(t, nw, DefaultBridge)
	if tap == nil || tap.Attrs().MasterIndex != br.Attrs().Index || tap.Attrs().Flags&net.FlagUp == 0 {
		t.Fatalf("tap %s not up on the bridge: %+v", a.Tap, tap)
	}
	elems, err := nw.listPorts(ctx)
	if err != nil || len(elems) != 2 {
		t.Fatalf("port map %+v, %v; want 2 elements", elems, err)
	}

	for _, id := range []string{"m1", "m2"} {
		if err := nw.Release(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if after := snapshot(t, nw); !after.equal(before) {
		t.Errorf("release left things behind:\nbefore %+v\nafter  %+v", before, after)
	}
	if atts, _ := nw.Attachments(); len(atts) != 0 {
		t.Errorf("records left: %+v", atts)
	}
	if err := nw.Release(ctx, "m1"); err != nil {
		t.Errorf("second release: %v", err)
	}
}

func TestReattachAfterRestartKeepsAddress(t *testing.T) {
	nw, name := newTestNetwork(t, Config{})
	ctx := context.Background()
	a, err := nw.Attach(ctx, "m1", []Port{{HostPort: 18080, GuestPort: 80, Protocol: "tcp"}})
	if err != nil {
		t.Fatal(err)
	}
	a.File.Close()
	nw2, err := New(ctx, nw.db, Config{NetNS: name})
	if err != nil {
		t.Fatal(err)
	}
	b, err := nw2.Attach(ctx, "m1", nil)
	if err != nil {
		t.Fatal(err)
	}
	b.File.Close()
	if b.IP() != a.IP() || len(b.Ports) != 1 || b.Ports[0] != a.Ports[0] {
		t.Errorf("re-attach %+v, first %+v", b, a)
	}
	if elems, _ := nw2.listPorts(ctx); len(elems) != 1 {
		t.Errorf("port map after re-attach: %+v", elems)
	}
	if c, err := nw2.Attach(ctx, "m2", nil); err != nil || c.IP() == a.IP() {
		t.Errorf("m2 got %v, %v while m1 holds %s", c, err, a.IP())
	} else {
		c.File.Close()
	}
}
