package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/errdefs"
)

func TestCreateInspectRemove(t *testing.T) {
	s := newTestService(t, Config{})
	ctx := context.Background()
	before := snapshot(t, s)
	if before.Ruleset != "" || slices.ContainsFunc(before.Links, isOurBridge) {
		t.Fatalf("a service with no network touched the namespace: %+v", before)
	}
	n, err := s.Create(ctx, CreateRequest{Name: "front", Labels: map[string]string{"tier": "web"}})
	if err != nil {
		t.Fatal(err)
	}
	if !n.Subnet.IsValid() || !n.IPv6() || !n.Subnet6.Addr().Is6() || n.Subnet6.Bits() != 64 || n.Gateway != n.Subnet.Addr().Next() {
		t.Fatalf("network %+v", n)
	}
	if b := n.Subnet6.Addr().As16(); b[0] != 0xfd {
		t.Errorf("IPv6 subnet %s is not a ULA", n.Subnet6)
	}
	mid := snapshot(t, s)
	for _, want := range []string{n.Bridge, n.Gateway.String() + "/24", n.Gateway6.String() + "/64"} {
		if !strings.Contains(strings.Join(mid.Links, " ")+mid.Addrs, want) {
			t.Errorf("after create: %q missing:\n%s", want, mid.Addrs)
		}
	}
	if !strings.Contains(mid.Ruleset, "table inet ferry") || !strings.Contains(mid.Ruleset, "table bridge ferry") || !strings.Contains(mid.Ruleset, n.Bridge) {
		t.Errorf("ruleset:\n%s", mid.Ruleset)
	}
	info, err := s.Inspect(ctx, "front")
	if err != nil || info.ID != n.ID || info.Labels["tier"] != "web" || len(info.Endpoints) != 0 {
		t.Fatalf("inspect: %+v, %v", info, err)
	}
	if byID, err := s.Inspect(ctx, n.ID[:8]); err != nil || byID.Name != "front" {
		t.Errorf("inspect by ID prefix: %+v, %v", byID, err)
	}
	if ls, _ := s.List(ctx, ListOptions{Labels: map[string]string{"tier": ""}}); len(ls) != 1 {
		t.Errorf("ls --filter label=tier: %+v", ls)
	}
	if ls, _ := s.List(ctx, ListOptions{Labels: map[string]string{"tier": "db"}}); len(ls) != 0 {
		t.Errorf("ls --filter label=tier=db: %+v", ls)
	}

	att, err := s.Attach(ctx, AttachRequest{MachineID: "m1", Name: "web", App: "shop", Networks: []EndpointRequest{{Network: "front"}}})
	if err != nil {
		t.Fatal(err)
	}
	att.Close()
	if err := s.Remove(ctx, "front"); !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "in use by machines web") {
		t.Errorf("rm of a network in use: %v", err)
	}
	if err := s.Release(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, "front"); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, s); !after.equal(before) {
		t.Errorf("network rm left things behind:\n%s", before.diff(after))
	}
	if _, err := s.Inspect(ctx, "front"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("inspect after rm: %v", err)
	}
}

func TestCreateBadInput(t *testing.T) {
	s := newTestService(t, Config{})
	ctx := context.Background()
	if _, err := s.Create(ctx, CreateRequest{Name: "a", Subnets: []netip.Prefix{netip.MustParsePrefix("10.50.0.0/16")}}); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, s)
	off := false
	for _, tc := range []struct {
		name string
		req  CreateRequest
		kind error
		msg  string
	}{
		{"duplicate", CreateRequest{Name: "a"}, errdefs.ErrAlreadyExists, "already exists"},
		{"not a label", CreateRequest{Name: "no.dots"}, errdefs.ErrInvalidArgument, "not a DNS label"},
		{"too long", CreateRequest{Name: strings.Repeat("x", 64)}, errdefs.ErrInvalidArgument, "not a DNS label"},
		{"overlap", CreateRequest{Name: "b", Subnets: []netip.Prefix{netip.MustParsePrefix("10.50.3.0/24")}}, errdefs.ErrConflict, "overlaps network a"},
		{"gateway outside", CreateRequest{Name: "c", Subnets: []netip.Prefix{netip.MustParsePrefix("10.60.0.0/24")}, Gateways: []netip.Addr{netip.MustParseAddr("10.61.0.1")}}, errdefs.ErrInvalidArgument, "not a host address"},
		{"two v4", CreateRequest{Name: "d", Subnets: []netip.Prefix{netip.MustParsePrefix("10.60.0.0/24"), netip.MustParsePrefix("10.61.0.0/24")}}, errdefs.ErrInvalidArgument, "at most one"},
		{"v6 off with v6 subnet", CreateRequest{Name: "e", IPv6: &off, Subnets: []netip.Prefix{netip.MustParsePrefix("fd00:1::/64")}}, errdefs.ErrInvalidArgument, "IPv6 off"},
		{"tiny", CreateRequest{Name: "f", Subnets: []netip.Prefix{netip.MustParsePrefix("10.70.0.0/31")}}, errdefs.ErrInvalidArgument, "prefix length"},
	} {
		_, err := s.Create(ctx, tc.req)
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v; want %v containing %q", tc.name, err, tc.kind, tc.msg)
		}
	}
	if after := snapshot(t, s); !after.equal(before) {
		t.Errorf("refused creates changed the namespace:\n%s", before.diff(after))
	}
}

func TestAttachBadInput(t *testing.T) {
	s := newTestService(t, Config{})
	ctx := context.Background()
	for _, req := range []CreateRequest{{Name: "front", Subnets: []netip.Prefix{netip.MustParsePrefix("10.77.0.0/29")}}, {Name: "vault", Internal: true}} {
		if _, err := s.Create(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	att, err := s.Attach(ctx, AttachRequest{MachineID: "m1", Name: "web", Networks: []EndpointRequest{{Network: "front", IPv4: netip.MustParseAddr("10.77.0.5")}}})
	if err != nil {
		t.Fatal(err)
	}
	att.Close()
	if got := att.IP(); got != netip.MustParseAddr("10.77.0.5") {
		t.Errorf("--ip 10.77.0.5 gave %s", got)
	}
	var l net.Listener
	if err := s.ns.do(func() (err error) { l, err = net.Listen("tcp4", ":18081"); return err }); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	before := snapshot(t, s)
	on := func(n string, aliases ...string) []EndpointRequest {
		return []EndpointRequest{{Network: n, Aliases: aliases}}
	}
	for _, tc := range []struct {
		name string
		req  AttachRequest
		kind error
		msg  string
	}{
		{"unknown network", AttachRequest{Networks: on("nope")}, errdefs.ErrNotFound, "network nope not found"},
		{"alias not a label", AttachRequest{Networks: on("front", "a.b")}, errdefs.ErrInvalidArgument, "not a DNS label"},
		{"alias twice", AttachRequest{Networks: on("front", "x", "x")}, errdefs.ErrInvalidArgument, "given twice"},
		{"alias is another's name", AttachRequest{Networks: on("front", "web")}, errdefs.ErrConflict, "name of machine web"},
		{"address outside", AttachRequest{Networks: []EndpointRequest{{Network: "front", IPv4: netip.MustParseAddr("10.78.0.2")}}}, errdefs.ErrInvalidArgument, "not a machine address"},
		{"address taken", AttachRequest{Networks: []EndpointRequest{{Network: "front", IPv4: netip.MustParseAddr("10.77.0.5")}}}, errdefs.ErrConflict, "in use by machine"},
		{"network twice", AttachRequest{Networks: []EndpointRequest{{Network: "front"}, {Network: "front"}}}, errdefs.ErrInvalidArgument, "given twice"},
		{"ports on internal", AttachRequest{Networks: on("vault"), Ports: []Port{{Protocol: "tcp", GuestPort: 80}}}, errdefs.ErrInvalidArgument, "internal"},
		{"host port busy", AttachRequest{Networks: on("front"), Ports: []Port{{Protocol: "tcp", HostPort: 18081, GuestPort: 80}}}, errdefs.ErrConflict, "already in use"},
		{"host address not ours", AttachRequest{Networks: on("front"), Ports: []Port{{Protocol: "tcp", HostIP: netip.MustParseAddr("192.0.2.9"), HostPort: 18082, GuestPort: 80}}}, errdefs.ErrInvalidArgument, "not an address of this host"},
	} {
		tc.req.MachineID, tc.req.Name = "m2", "m2"
		_, err := s.Attach(ctx, tc.req)
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v; want %v containing %q", tc.name, err, tc.kind, tc.msg)
		}
	}
	// Exhausted: .2-.6 are five addresses; m1 holds one.
	for i := range 4 {
		a, err := s.Attach(ctx, AttachRequest{MachineID: fmt.Sprint("f", i), Networks: on("front")})
		if err != nil {
			t.Fatal(err)
		}
		a.Close()
	}
	full := snapshot(t, s)
	if _, err := s.Attach(ctx, AttachRequest{MachineID: "f9", Networks: on("front")}); !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "exhausted") {
		t.Errorf("full subnet: %v", err)
	}
	if after := snapshot(t, s); !after.equal(full) {
		t.Errorf("a refused attach changed the namespace:\n%s", full.diff(after))
	}
	for i := range 4 {
		s.Release(ctx, fmt.Sprint("f", i))
	}
	if after := snapshot(t, s); !after.equal(before) {
		t.Errorf("refused attaches or releases left things behind:\n%s", before.diff(after))
	}
}

// TestRestartKeepsEverything: a new service on the same database (a
// daemon restart) finds the same networks, addresses, rules and resolvers,
// and answers DNS again; DNS follows release, re-attach and rename.
func TestRestartKeepsEverything(t *testing.T) {
	s := newTestService(t, Config{})
	ctx := context.Background()
	n, err := s.Create(ctx, CreateRequest{Name: "front"})
	if err != nil {
		t.Fatal(err)
	}
	att, err := s.Attach(ctx, AttachRequest{MachineID: "m1", Name: "web", App: "shop", Networks: []EndpointRequest{{Network: "front", Aliases: []string{"www"}}},
		Ports: []Port{{Protocol: "tcp", HostPort: 18090, GuestPort: 80}}})
	if err != nil {
		t.Fatal(err)
	}
	att.Close()
	if !slices.Equal(att.DNS, []string{n.Gateway.String(), n.Gateway6.String()}) || !slices.Equal(att.Search, []string{"shop.internal"}) {
		t.Errorf("guest resolv.conf: %v search %v", att.DNS, att.Search)
	}
	web := att.IP()
	ask := func(s *Service, name string) []string {
		_, got := lookup(t, s.ns, n.Gateway, name, dns.TypeA)
		return got
	}
	if got := ask(s, "web.shop.internal"); !slices.Equal(got, []string{web.String()}) {
		t.Fatalf("before restart: %v", got)
	}
	before := snapshot(t, s)
	s.Close()
	s2, err := Open(ctx, s.db, s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if after := snapshot(t, s2); !after.equal(before) {
		t.Errorf("restart changed the namespace:\n%s", before.diff(after))
	}
	if got := ask(s2, "www"); !slices.Equal(got, []string{web.String()}) {
		t.Errorf("after restart: %v", got)
	}
	if err := s2.Rename(ctx, "m1", "api"); err != nil {
		t.Fatal(err)
	}
	if got := ask(s2, "api.shop.internal"); !slices.Equal(got, []string{web.String()}) {
		t.Errorf("after rename: %v", got)
	}
	if got := ask(s2, "web"); len(got) != 0 {
		t.Errorf("the old name still answers: %v", got)
	}
	if err := s2.Release(ctx, "m1"); err != nil { // stop
		t.Fatal(err)
	}
	if got := ask(s2, "api"); len(got) != 0 {
		t.Errorf("a stopped machine still answers: %v", got)
	}
	att, err = s2.Attach(ctx, AttachRequest{MachineID: "m1", Name: "api", App: "shop", Networks: []EndpointRequest{{Network: "front"}}}) // start
	if err != nil {
		t.Fatal(err)
	}
	att.Close()
	if got := ask(s2, "api"); !slices.Equal(got, []string{att.IP().String()}) {
		t.Errorf("after start: %v", got)
	}
	if got := ask(s2, "www"); len(got) != 0 {
		t.Errorf("an alias it no longer has answers: %v", got)
	}
}

func TestReconcile(t *testing.T) {
	s := newTestService(t, Config{})
	ctx := context.Background()
	if _, err := s.Create(ctx, CreateRequest{Name: "front"}); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, s)
	var keep *Attachment
	for i, id := range []string{"live", "dead1", "dead2"} {
		a, err := s.Attach(ctx, AttachRequest{MachineID: id, Networks: []EndpointRequest{{Network: "front"}},
			Ports: []Port{{Protocol: "tcp", HostPort: uint16(18090 + i), GuestPort: 80}}})
		if err != nil {
			t.Fatal(err)
		}
		a.Close()
		if id == "live" {
			keep = a
		}
	}
	// An orphan TAP and bridge with no record (a crash before the record was
	// written, or a lost database).
	f, err := openTap(s.ns, TapName("ghost", "x"), 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	ipCmd(t, "-n", s.cfg.NetNS, "link", "add", bridgePrefix+"0123456789ab", "type", "bridge")
	if err := s.Reconcile(ctx, []string{"live"}); err != nil {
		t.Fatal(err)
	}
	got := snapshot(t, s)
	want := append(slices.Clone(before.Links), keep.Primary().Tap)
	slices.Sort(want)
	if !slices.Equal(got.Links, want) {
		t.Errorf("links %v, want %v", got.Links, want)
	}
	if !strings.Contains(got.Ruleset, "tcp . 18090") || strings.Contains(got.Ruleset, "tcp . 18091") {
		t.Errorf("ports after reconcile:\n%s", got.Ruleset)
	}
	if err := s.Reconcile(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, s); !after.equal(before) {
		t.Errorf("reconcile with no live machines left things:\n%s", before.diff(after))
	}
}

// TestAppDefaultNetwork: a machine with no networks joins its app's
// network, created on first use; the default app's is "default" on the
// configured bridge and subnet.
func TestAppDefaultNetwork(t *testing.T) {
	s := newTestService(t, Config{Subnet: netip.MustParsePrefix("10.213.0.0/22")})
	ctx := context.Background()
	a, err := s.Attach(ctx, AttachRequest{MachineID: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	b, err := s.Attach(ctx, AttachRequest{MachineID: "m2", App: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	def, err := s.Inspect(ctx, DefaultNetwork)
	if err != nil || def.Bridge != DefaultBridge || def.Subnet != netip.MustParsePrefix("10.213.0.0/22") || len(def.Endpoints) != 1 {
		t.Fatalf("default network: %+v, %v", def, err)
	}
	shop, err := s.Inspect(ctx, "shop")
	if err != nil || shop.App != "shop" || shop.Labels["ferry.app"] != "shop" || !shop.Subnet.Overlaps(s.cfg.Pool) {
		t.Fatalf("app network: %+v, %v", shop, err)
	}
	if a.Primary().Network != DefaultNetwork || b.Primary().Network != "shop" {
		t.Errorf("endpoints on %s and %s", a.Primary().Network, b.Primary().Network)
	}
	if err := s.Remove(ctx, "shop"); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("rm of an app network in use: %v", err)
	}
	s.Release(ctx, "m2")
	if gone, err := s.Prune(ctx, ListOptions{}); err != nil || !slices.Equal(gone, []string{"shop"}) {
		t.Errorf("prune: %v, %v (the default network stays, one in use too)", gone, err)
	}
}

// TestLegacyMigration: machines of the one-network layout move onto the
// default network with their TAP, MAC, address and ports.
func TestLegacyMigration(t *testing.T) {
	requireNetAdmin(t)
	db := testDB(t)
	old := `{"machine_id":"m1","ip":"10.213.0.7","tap":"ft-0123456789ab","mac":"02:fe:00:00:00:01","ports":[{"host_port":18095,"guest_port":80,"proto":"tcp"}]}`
	if err := db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("network"))
		if err != nil {
			return err
		}
		m, err := b.CreateBucketIfNotExists([]byte("machines"))
		if err != nil {
			return err
		}
		return m.Put([]byte("m1"), []byte(old))
	}); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), db, Config{NetNS: testNetNS(t).name, Upstreams: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	att, err := s.Attachment(context.Background(), "m1")
	if err != nil || att == nil {
		t.Fatalf("migrated attachment: %v, %v", att, err)
	}
	e := att.Primary()
	if e.Tap != "ft-0123456789ab" || e.MAC != "02:fe:00:00:00:01" || e.IPv4 != netip.MustParsePrefix("10.213.0.7/22") || e.Network != DefaultNetwork ||
		len(att.Ports) != 1 || att.Ports[0].HostPort != 18095 {
		t.Errorf("migrated %+v %+v", e, att.Ports)
	}
	db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket([]byte("network")) != nil {
			t.Error("the old bucket is still there")
		}
		return nil
	})
}

// TestMultiHomedDNS: a machine on two networks asks its first network's
// resolver (its resolv.conf names only that one) and finds the machines of
// both; a machine on one network finds only its own network's; the view
// follows the other network's machines as they come and go.
func TestMultiHomedDNS(t *testing.T) {
	requireNetAdmin(t)
	s := newTestService(t, Config{Upstreams: []string{fakeUpstream(t)}})
	ctx := context.Background()
	front, err := s.Create(ctx, CreateRequest{Name: "front"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, CreateRequest{Name: "back"}); err != nil {
		t.Fatal(err)
	}
	attach := func(id, name string, nets ...string) *Attachment {
		t.Helper()
		var eps []EndpointRequest
		for _, n := range nets {
			eps = append(eps, EndpointRequest{Network: n})
		}
		att, err := s.Attach(ctx, AttachRequest{MachineID: id, Name: name, App: "shop", Networks: eps})
		if err != nil {
			t.Fatal(err)
		}
		att.Close()
		return att
	}
	web := attach("m1", "web", "front")
	db := attach("m2", "db", "back")
	api := attach("m3", "api", "front", "back")
	if !slices.Equal(api.DNS, []string{front.Gateway.String(), front.Gateway6.String()}) {
		t.Fatalf("api's nameservers %v: want front's resolver", api.DNS)
	}
	apiG := plugGuest(t, s, api.Endpoints[0], front.Bridge)
	webG := plugGuest(t, s, web.Endpoints[0], front.Bridge)
	rc, got := lookup(t, apiG.ns, front.Gateway, "db.shop.internal", dns.TypeA)
	wantAddrs(t, "api asks front for db (on back)", rc, got, db.IP())
	rc, got = lookup(t, apiG.ns, front.Gateway6, "db", dns.TypeAAAA)
	wantAddrs(t, "api asks front for db over IPv6", rc, got, db.Endpoints[0].IPv6.Addr())
	rc, got = lookup(t, apiG.ns, front.Gateway, "web", dns.TypeA)
	wantAddrs(t, "api asks front for web", rc, got, web.IP())
	rc, got = lookup(t, webG.ns, front.Gateway, "db", dns.TypeA)
	wantAddrs(t, "web (front only) asks front for db", rc, got)
	if err := s.Release(ctx, "m2"); err != nil {
		t.Fatal(err)
	}
	rc, got = lookup(t, apiG.ns, front.Gateway, "db", dns.TypeA)
	wantAddrs(t, "api asks for db once db stopped", rc, got)
}

// TestNoNetwork: --network none gives a machine no NIC, address, name or
// rule (the namespace is as before), takes a machine that had networks off
// them, refuses what needs a network, and "none" and "host" cannot name a
// network.
func TestNoNetwork(t *testing.T) {
	s := newTestService(t, Config{})
	ctx := context.Background()
	if _, err := s.Create(ctx, CreateRequest{Name: "front"}); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, s)
	none := []EndpointRequest{{Network: NoNetwork}}
	att, err := s.Attach(ctx, AttachRequest{MachineID: "m1", Name: "solo", App: "shop", Networks: none})
	if err != nil {
		t.Fatal(err)
	}
	if len(att.Endpoints) != 0 || len(att.DNS) != 0 || att.IP().IsValid() {
		t.Errorf("attachment on none: %+v", att)
	}
	if after := snapshot(t, s); !after.equal(before) {
		t.Errorf("--network none changed the namespace:\n%s", before.diff(after))
	}
	// A machine that was on front, restarted on none, leaves front.
	att, err = s.Attach(ctx, AttachRequest{MachineID: "m2", Name: "web", App: "shop", Networks: []EndpointRequest{{Network: "front"}}})
	if err != nil {
		t.Fatal(err)
	}
	att.Close()
	if _, err := s.Attach(ctx, AttachRequest{MachineID: "m2", Name: "web", App: "shop", Networks: none}); err != nil {
		t.Fatal(err)
	}
	if info, _ := s.Inspect(ctx, "front"); len(info.Endpoints) != 0 {
		t.Errorf("front still has %+v", info.Endpoints)
	}
	if after := snapshot(t, s); !after.equal(before) {
		t.Errorf("a machine moved to none left things behind:\n%s", before.diff(after))
	}
	for _, tc := range []struct {
		req  AttachRequest
		want string
	}{
		{AttachRequest{Networks: append(slices.Clone(none), EndpointRequest{Network: "front"})}, "cannot be joined with others"},
		{AttachRequest{Networks: none, Ports: []Port{{Protocol: "tcp", HostPort: 18099, GuestPort: 80}}}, "no published ports"},
		{AttachRequest{Networks: []EndpointRequest{{Network: NoNetwork, Aliases: []string{"x"}}}}, "no names or addresses"},
	} {
		tc.req.MachineID, tc.req.Name = "m3", "bad"
		if _, err := s.Attach(ctx, tc.req); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("attach %+v: %v; want %q", tc.req.Networks, err, tc.want)
		}
	}
	for _, name := range []string{"none", "host"} {
		if _, err := s.Create(ctx, CreateRequest{Name: name}); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("create %s: %v", name, err)
		}
	}
}
