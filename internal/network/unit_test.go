package network

import (
	"errors"
	"net/netip"
	"path/filepath"
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

// TestRecordFormat pins the database shape: records written before they
// had a version (and with the "proto" key) still load; a newer version is
// refused.
func TestRecordFormat(t *testing.T) {
	old := `{"machine_id":"m1","ip":"10.213.0.2","tap":"ft-0123456789ab","mac":"02:fe:00:00:00:01","ports":[{"host_port":8080,"guest_port":80,"proto":"tcp"}]}`
	r, err := decodeRecord([]byte("m1"), []byte(old))
	if err != nil {
		t.Fatal(err)
	}
	want := []Port{{Protocol: "tcp", HostPort: 8080, GuestPort: 80}}
	if r.IP != mustAddr("10.213.0.2") || !slices.Equal(r.ports(), want) {
		t.Errorf("old record read as %+v", r)
	}
	if _, err := decodeRecord([]byte("m1"), []byte(`{"v":99,"machine_id":"m1"}`)); err == nil {
		t.Error("a record from a newer ferry loaded")
	}
}

func TestParseResolvConf(t *testing.T) {
	in := "# comment\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch lan\nnameserver ::1\nnameserver fe80::1%eth0\nnameserver 2001:db8::1\n"
	got := parseResolvConf(strings.NewReader(in))
	if strings.Join(got, ",") != "10.0.0.2,2001:db8::1" {
		t.Errorf("nameservers %q", got)
	}
	if ns := hostDNS(filepath.Join(t.TempDir(), "missing")); len(ns) == 0 {
		t.Error("no fallback nameservers")
	}
}

func testDB(t *testing.T) *bbolt.DB {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := initBuckets(db); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestAllocate checks IPAM alone: no reuse while allocated, round-robin
// after release, a clear error when the subnet is full.
func TestAllocate(t *testing.T) {
	db := testDB(t)
	sn := netip.MustParsePrefix("10.9.0.0/29") // .2 .. .6: 5 machines
	alloc := func(id string) (netip.Addr, error) {
		var a netip.Addr
		err := db.Update(func(tx *bbolt.Tx) (err error) {
			if a, err = allocate(tx, sn); err != nil {
				return err
			}
			return putRecord(tx, &record{MachineID: id, IP: a})
		})
		return a, err
	}
	seen := map[netip.Addr]bool{}
	for i := range 5 {
		a, err := alloc(string(rune('a' + i)))
		if err != nil {
			t.Fatal(err)
		}
		if seen[a] || a == netip.MustParseAddr("10.9.0.1") || !sn.Contains(a) || a == netip.MustParseAddr("10.9.0.7") {
			t.Fatalf("allocated %s (seen %v)", a, seen)
		}
		seen[a] = true
	}
	_, err := alloc("f")
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "exhausted") {
		t.Fatalf("6th allocation: %v, want subnet exhausted", err)
	}
	// Free b (.3): the next allocation takes it, being the only free one.
	db.Update(func(tx *bbolt.Tx) error {
		r, _ := getRecord(tx, "b")
		return deleteRecord(tx, r)
	})
	if a, err := alloc("g"); err != nil || a != netip.MustParseAddr("10.9.0.3") {
		t.Fatalf("after release got %s, %v", a, err)
	}
}

func TestNamesFitIFNAMSIZ(t *testing.T) {
	n := TapName("a-very-long-machine-identifier-0123456789")
	if len(n) > 15 || !isOurTap(n) || n != TapName("a-very-long-machine-identifier-0123456789") {
		t.Errorf("tap name %q", n)
	}
	if m := MAC("x"); !strings.HasPrefix(m, "02:fe:") || len(m) != 17 {
		t.Errorf("mac %q", m)
	}
}

func TestParsePortMap(t *testing.T) {
	out := `{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"map": {"family": "ip", "name": "ports", "table": "ferry", "type": ["inet_proto", "inet_service"], "handle": 2, "map": "ipv4_addr . inet_service", "elem": [[{"concat": ["tcp", 18080]}, {"concat": ["10.213.0.2", 80]}], [{"concat": ["udp", 53]}, {"concat": ["10.213.0.3", 5353]}]]}}]}`
	got, err := parsePortMap([]byte(out))
	if err != nil || len(got) != 2 || got[0].HostPort != 18080 || got[1].Protocol != "udp" || got[1].IP != netip.MustParseAddr("10.213.0.3") || got[1].GuestPort != 5353 {
		t.Fatalf("parsed %+v, %v", got, err)
	}
}

func TestParseAddrPortMap(t *testing.T) {
	out := `{"nftables": [{"map": {"family": "ip", "name": "addrports", "table": "ferry", "elem": [[{"concat": ["127.0.0.1", "tcp", 8080]}, {"concat": ["10.213.0.2", 80]}]]}}]}`
	got, err := parsePortMap([]byte(out))
	want := portElem{Port: Port{Protocol: "tcp", HostIP: mustAddr("127.0.0.1"), HostPort: 8080, GuestPort: 80}, IP: mustAddr("10.213.0.2")}
	if err != nil || len(got) != 1 || got[0] != want {
		t.Fatalf("parsed %+v, %v; want %+v", got, err, want)
	}
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func mustAddr(s string) netip.Addr     { return netip.MustParseAddr(s) }

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	slices.Sort(s)
	return s
}
