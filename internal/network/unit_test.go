package network

import (
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/errdefs"
)

func TestParsePort(t *testing.T) {
	lo, v6 := mustAddr("127.0.0.1"), mustAddr("::1")
	for _, tc := range []struct {
		in   string
		want Port
		err  bool
	}{
		{"18080:80", Port{Protocol: "tcp", HostPort: 18080, GuestPort: 80}, false},
		{"53:53/udp", Port{Protocol: "udp", HostPort: 53, GuestPort: 53}, false},
		{"80", Port{Protocol: "tcp", GuestPort: 80}, false},
		{"80/TCP", Port{Protocol: "tcp", GuestPort: 80}, false},
		{"127.0.0.1:8080:80", Port{Protocol: "tcp", HostIP: lo, HostPort: 8080, GuestPort: 80}, false},
		{"127.0.0.1::80/udp", Port{Protocol: "udp", HostIP: lo, GuestPort: 80}, false},
		{"[::1]:8080:80", Port{Protocol: "tcp", HostIP: v6, HostPort: 8080, GuestPort: 80}, false},
		{"[::1]::80", Port{Protocol: "tcp", HostIP: v6, GuestPort: 80}, false},
		{"0:80", Port{Protocol: "tcp", GuestPort: 80}, false},
		{"80:0", Port{}, true},
		{":80", Port{}, true},
		{"70000:80", Port{}, true},
		{"80/sctp", Port{}, true},
		{"localhost:80:80", Port{}, true},
		{"::1:80:80", Port{}, true},
		{"[127.0.0.1]:80:80", Port{}, true},
		{"[::1:80:80", Port{}, true},
		{"[::1]:80", Port{}, true},
		{"1.2.3.4:5:6:7", Port{}, true},
		{"", Port{}, true},
		{"a:b", Port{}, true},
	} {
		got, err := ParsePort(tc.in)
		if tc.err {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("ParsePort(%q) = %v, %v; want invalid argument", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParsePort(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if err == nil {
			if again, err := ParsePort(got.String()); tc.want.HostPort != 0 && (err != nil || again != got) {
				t.Errorf("ParsePort(%q.String() = %q) = %v, %v", tc.in, got.String(), again, err)
			}
		}
	}
}

func FuzzParsePort(f *testing.F) {
	for _, s := range []string{"80", "1:2/udp", "x", "::", "65535:65535/tcp", "127.0.0.1:1:2", "[::1]:3:4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePort(s)
		if err == nil && (p.GuestPort == 0 || (p.Protocol != "tcp" && p.Protocol != "udp")) {
			t.Fatalf("ParsePort(%q) accepted %+v", s, p)
		}
	})
}

// TestPortRecordCarriesEveryField fails when a field is added to Port or
// to its database record and the conversions do not carry it.
func TestPortRecordCarriesEveryField(t *testing.T) {
	if n, m := reflect.TypeFor[Port]().NumField(), reflect.TypeFor[portRecord]().NumField(); n != m {
		t.Fatalf("Port has %d fields, portRecord %d: carry the new one in toPortRecord/fromPortRecord", n, m)
	}
	p := Port{Protocol: "udp", HostIP: mustAddr("127.0.0.1"), HostPort: 1, GuestPort: 2}
	v := reflect.ValueOf(p)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Fatalf("test port leaves %s zero: set every field", v.Type().Field(i).Name)
		}
	}
	if got := fromPortRecord(toPortRecord(p)); got != p {
		t.Errorf("round trip %+v = %+v", p, got)
	}
}

// TestEndpointRecordCarriesEveryField fails when a field is added to
// Endpoint or its record and the conversions do not carry it.
func TestEndpointRecordCarriesEveryField(t *testing.T) {
	// Endpoint has the machine's ID, name, app (from the machine record),
	// MTU and File (of the running TAP) besides the record's fields.
	if n, m := reflect.TypeFor[Endpoint]().NumField(), reflect.TypeFor[endpointRecord]().NumField(); n != m+5 {
		t.Fatalf("Endpoint has %d fields, endpointRecord %d: carry the new one in toEndpointRecord/fromEndpointRecord", n, m)
	}
	m := &machineRecord{MachineID: "m1", Name: "web", App: "shop"}
	e := Endpoint{NetworkID: "n1", Network: "front", MachineID: "m1", Name: "web", App: "shop", Aliases: []string{"www"},
		Tap: "ft-0123456789ab", MAC: "02:fe:00:00:00:01", IPv4: mustPrefix("10.214.0.2/24"), Gateway: mustAddr("10.214.0.1"),
		IPv6: mustPrefix("fd00::2/64"), Gateway6: mustAddr("fd00::1"), Requested: mustAddr("10.214.0.2")}
	got := fromEndpointRecord(m, toEndpointRecord(e))
	if !reflect.DeepEqual(got, e) {
		t.Errorf("round trip\n%+v\n%+v", e, got)
	}
}

// TestRecordFormat pins the database shape: a record from a newer ferry is
// refused; a record of the old one-network layout moves to the default
// network (see TestLegacyMigration).
func TestRecordFormat(t *testing.T) {
	db := testDB(t)
	err := db.Update(func(tx *bbolt.Tx) error {
		if err := bkt(tx, bucketMachines).Put([]byte("m1"), []byte(`{"v":99,"machine_id":"m1"}`)); err != nil {
			return err
		}
		_, err := getMachine(tx, "m1")
		return err
	})
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "newer ferry") {
		t.Errorf("a record from a newer ferry: %v", err)
	}
}

func TestParseResolvConf(t *testing.T) {
	in := "# comment\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch lan\nnameserver fe80::1%eth0\nnameserver 2001:db8::1\n"
	got := parseResolvConf(strings.NewReader(in))
	if strings.Join(got, ",") != "127.0.0.53,10.0.0.2,2001:db8::1" {
		t.Errorf("upstreams %q (loopback resolvers are the daemon's to ask)", got)
	}
	if ns := hostUpstreams(t.TempDir() + "/missing"); !slices.Equal(ns, FallbackDNS) {
		t.Errorf("no resolv.conf: %v", ns)
	}
}

// TestAllocate checks IPAM alone: no reuse while allocated, round-robin
// after release, --ip inside the subnet only, a clear error when full, and
// the IPv6 twin of each address.
func TestAllocate(t *testing.T) {
	db := testDB(t)
	n := &Network{ID: "n1", Name: "tiny", Subnet: mustPrefix("10.9.0.0/29"), Gateway: mustAddr("10.9.0.1"),
		Subnet6: mustPrefix("fd00:1:2:3::/64"), Gateway6: mustAddr("fd00:1:2:3::1")} // .2 .. .6: 5 machines
	alloc := func(id string) (netip.Addr, error) {
		var a netip.Addr
		err := db.Update(func(tx *bbolt.Tx) (err error) {
			if a, err = allocate(tx, n); err != nil {
				return err
			}
			return putMachine(tx, &machineRecord{MachineID: id, Endpoints: []endpointRecord{{NetworkID: n.ID, IPv4: netip.PrefixFrom(a, 29)}}})
		})
		return a, err
	}
	seen := map[netip.Addr]bool{}
	for i := range 5 {
		a, err := alloc(string(rune('a' + i)))
		if err != nil {
			t.Fatal(err)
		}
		if seen[a] || a == n.Gateway || !n.Subnet.Contains(a) || a == mustAddr("10.9.0.7") || a == mustAddr("10.9.0.0") {
			t.Fatalf("allocated %s (seen %v)", a, seen)
		}
		seen[a] = true
	}
	_, err := alloc("f")
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "exhausted") {
		t.Fatalf("6th allocation: %v, want subnet exhausted", err)
	}
	db.Update(func(tx *bbolt.Tx) error {
		r, _ := getMachine(tx, "b")
		return deleteMachine(tx, r)
	})
	if a, err := alloc("g"); err != nil || a != mustAddr("10.9.0.3") {
		t.Fatalf("after release got %s, %v", a, err)
	}
	db.View(func(tx *bbolt.Tx) error {
		for _, tc := range []struct {
			ip   string
			kind error
		}{
			{"10.9.0.3", errdefs.ErrConflict},        // g's
			{"10.9.0.1", errdefs.ErrInvalidArgument}, // the gateway
			{"10.9.0.7", errdefs.ErrInvalidArgument}, // broadcast
			{"10.10.0.2", errdefs.ErrInvalidArgument},
		} {
			if err := claim(tx, n, mustAddr(tc.ip), "x"); !errors.Is(err, tc.kind) {
				t.Errorf("--ip %s: %v, want %v", tc.ip, err, tc.kind)
			}
		}
		if err := claim(tx, n, mustAddr("10.9.0.3"), "g"); err != nil {
			t.Errorf("g's own address: %v", err)
		}
		return nil
	})
	if got := ipv6For(n, mustAddr("10.9.0.5")); got != mustAddr("fd00:1:2:3::5") {
		t.Errorf("IPv6 twin of 10.9.0.5: %s", got)
	}
}

func TestPick(t *testing.T) {
	nets := []*Network{{Name: "a", Subnet: mustPrefix("10.214.0.0/24")}, {Name: "b", Subnet: mustPrefix("10.214.2.0/23")}}
	got, err := pick4(mustPrefix("10.214.0.0/22"), 24, nets, []netip.Prefix{mustPrefix("10.214.1.0/25")})
	if err == nil {
		t.Fatalf("picked %s from a full pool", got)
	}
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "network prune") {
		t.Errorf("full pool: %v", err)
	}
	if got, err := pick4(mustPrefix("10.214.0.0/22"), 24, nets, nil); err != nil || got != mustPrefix("10.214.1.0/24") {
		t.Errorf("pick4 = %s, %v", got, err)
	}
}

func TestNamesFitIFNAMSIZ(t *testing.T) {
	n := TapName("a-very-long-machine-identifier-0123456789", strings.Repeat("f", 64))
	if len(n) > 15 || !isOurTap(n) || n == TapName("a-very-long-machine-identifier-0123456789", strings.Repeat("e", 64)) {
		t.Errorf("tap name %q", n)
	}
	if m := MAC("x", "n"); !strings.HasPrefix(m, "02:fe:") || len(m) != 17 || m == MAC("x", "o") {
		t.Errorf("mac %q", m)
	}
	if ll, ok := eui64("02:fe:01:02:03:04"); !ok || ll != mustAddr("fe80::fe:1ff:fe02:304") {
		t.Errorf("EUI-64 link-local %s", ll)
	}
}

func TestNames(t *testing.T) {
	for _, ok := range []string{"a", "web", "proj_default", "a-b", strings.Repeat("x", 63)} {
		if !ValidName(ok) {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{"", "-a", "a-", "a.b", "a b", strings.Repeat("x", 64), "ä"} {
		if ValidName(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
	for app, want := range map[string]string{"": "default", "default": "default", "shop": "shop", "my.app": "my-app"} {
		if got := AppNetworkName(app); got != want {
			t.Errorf("AppNetworkName(%q) = %q, want %q", app, got, want)
		}
	}
}

func TestPortOverlaps(t *testing.T) {
	any := Port{Protocol: "tcp", HostPort: 80}
	for _, tc := range []struct {
		a, b Port
		want bool
	}{
		{any, any, true},
		{any, Port{Protocol: "udp", HostPort: 80}, false},
		{any, Port{Protocol: "tcp", HostPort: 81}, false},
		{any, Port{Protocol: "tcp", HostIP: mustAddr("127.0.0.1"), HostPort: 80}, true},
		{Port{Protocol: "tcp", HostIP: mustAddr("127.0.0.1"), HostPort: 80}, Port{Protocol: "tcp", HostIP: mustAddr("127.0.0.2"), HostPort: 80}, false},
		{Port{Protocol: "tcp", HostIP: mustAddr("0.0.0.0"), HostPort: 80}, Port{Protocol: "tcp", HostIP: mustAddr("::1"), HostPort: 80}, false},
		{Port{Protocol: "tcp", HostIP: mustAddr("::"), HostPort: 80}, Port{Protocol: "tcp", HostIP: mustAddr("::1"), HostPort: 80}, true},
	} {
		if got := tc.a.overlaps(tc.b); got != tc.want || tc.b.overlaps(tc.a) != got {
			t.Errorf("%s overlaps %s = %v, want %v (both ways)", tc.a, tc.b, got, tc.want)
		}
	}
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func mustAddr(s string) netip.Addr     { return netip.MustParseAddr(s) }
