package network

import (
	"strings"
	"testing"
)

func testRules() Rules {
	a := &Network{ID: "a", Name: "a", Bridge: "fb-aaaaaaaaaaaa", Subnet: mustPrefix("10.214.0.0/24"), Gateway: mustAddr("10.214.0.1"),
		Subnet6: mustPrefix("fd00:1:2:1::/64"), Gateway6: mustAddr("fd00:1:2:1::1")}
	b := &Network{ID: "b", Name: "b", Bridge: "fb-bbbbbbbbbbbb", Subnet: mustPrefix("10.214.1.0/24"), Gateway: mustAddr("10.214.1.1"), Internal: true}
	return Rules{
		Table:    "ferry",
		Networks: []*Network{b, a},
		Endpoints: []Endpoint{
			{Tap: "ft-000000000001", MAC: "02:fe:00:00:00:01", IPv4: mustPrefix("10.214.0.2/24"), IPv6: mustPrefix("fd00:1:2:1::2/64")},
			{Tap: "ft-000000000002", MAC: "02:fe:00:00:00:02", IPv4: mustPrefix("10.214.1.2/24")},
		},
		Ports: []PortRule{
			{Port: Port{Protocol: "tcp", HostPort: 8080, GuestPort: 80}, IPv4: mustAddr("10.214.0.2"), IPv6: mustAddr("fd00:1:2:1::2")},
			{Port: Port{Protocol: "udp", HostIP: mustAddr("127.0.0.1"), HostPort: 5353, GuestPort: 53}, IPv4: mustAddr("10.214.0.2"), IPv6: mustAddr("fd00:1:2:1::2")},
			{Port: Port{Protocol: "tcp", HostIP: mustAddr("::1"), HostPort: 8443, GuestPort: 443}, IPv4: mustAddr("10.214.0.2"), IPv6: mustAddr("fd00:1:2:1::2")},
		},
	}
}

// TestRulesScript checks the rules as data: every fact is a set or map
// element, and the rule text does not depend on how many there are.
func TestRulesScript(t *testing.T) {
	r := testRules()
	s := r.Script()
	for _, want := range []string{
		`delete table inet ferry`, `delete table bridge ferry`, `delete table ip ferry`, // replaced whole, legacy table gone
		`"fb-aaaaaaaaaaaa" . 10.214.0.1`,    // gw4
		`"fb-aaaaaaaaaaaa" . fd00:1:2:1::1`, // gw6
		`set internal {`, `elements = { "fb-bbbbbbbbbbbb" }`,
		`tcp . 8080 : 10.214.0.2 . 80`,                           // ports4any
		`tcp . 8080 : fd00:1:2:1::2 . 80`,                        // ports6any: dual stack
		`127.0.0.1 . udp . 5353 : 10.214.0.2 . 53`,               // one host address only
		`::1 . tcp . 8443 : fd00:1:2:1::2 . 443`,                 // and its family only
		`"ft-000000000001" . 02:fe:00:00:00:01`,                  // tap_mac
		`"ft-000000000001" . fe80::fe:ff:fe00:1`,                 // EUI-64 link-local
		`"ft-000000000001" . 0xfe8000000000000000fe00fffe000001`, // tap_nd
		`iifname @bridges ip daddr 127.0.0.0/8 drop`,
		`ip daddr 169.254.0.0/16 drop`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q", want)
		}
	}
	if strings.Contains(s, "127.0.0.1 . udp . 5353 : fd00") || strings.Contains(s, "udp . 5353 : 10.214.0.2 . 53,") && strings.Contains(s, "ports4any {\n\t\ttype inet_proto . inet_service : ipv4_addr . inet_service\n\t\telements = { udp") {
		t.Error("a port published on 127.0.0.1 leaked into another family or every address")
	}
	if r.Script() != s {
		t.Error("the same rules rendered differently")
	}
	allowed := r
	allowed.AllowLinkLocal = true
	if strings.Contains(allowed.Script(), "169.254.0.0/16") {
		t.Error("AllowLinkLocal still drops 169.254/16")
	}

	// More machines add elements, never rules.
	more := testRules()
	for i := range 100 {
		more.Endpoints = append(more.Endpoints, Endpoint{Tap: TapName("m", string(rune(i))), MAC: MAC("m", string(rune(i))), IPv4: mustPrefix("10.214.0.9/24")})
	}
	if rules(more.Script()) != rules(s) {
		t.Error("the rule lists grew with the number of machines")
	}
	if got := (Rules{Table: "ferry"}).Script(); strings.Contains(got, "chain") {
		t.Errorf("no networks still makes tables:\n%s", got)
	}
}

// rules is the script without set and map bodies.
func rules(script string) string {
	var out []string
	in := false
	for _, l := range strings.Split(script, "\n") {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "set ") || strings.HasPrefix(t, "map "):
			in = true
		case in && t == "}":
			in = false
		case !in:
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
