package network

import (
	"context"
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
		`tcp . 8080 : 10.214.0.2 . 80`,                               // ports4any
		`tcp . 8080 : fd00:1:2:1::2 . 80`,                            // ports6any: dual stack
		`127.0.0.1 . udp . 5353 : 10.214.0.2 . 53`,                   // one host address only
		`::1 . tcp . 8443 : fd00:1:2:1::2 . 443`,                     // and its family only
		`"ft-000000000001" . 02:fe:00:00:00:01`,                      // tap_mac
		`"ft-000000000001" . 02:fe:00:00:00:01 . fe80::fe:ff:fe00:1`, // EUI-64 link-local
		`"ft-000000000001" . 0xfe8000000000000000fe00fffe000001`,     // tap_nd
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

// TestElementScript: adding one machine's elements to the ruleset without
// it gives exactly the ruleset with it, and deleting them gives back the
// one without (attach and release never replace the tables).
func TestElementScript(t *testing.T) {
	requireNetAdmin(t)
	n := testNetNS(t)
	load := func(script string) string {
		t.Helper()
		if _, err := n.run(context.Background(), script, "nft", "-f", "-"); err != nil {
			t.Fatal(err)
		}
		out, err := n.run(context.Background(), "", "nft", "list", "ruleset")
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	full := testRules()
	without := full
	without.Endpoints, without.Ports = full.Endpoints[1:], nil
	withRules := load(full.Script())
	withoutRules := load(without.Script())
	if withRules == withoutRules {
		t.Fatal("the machine adds nothing")
	}
	if got := load(ElementScript("ferry", "add", full.Endpoints[:1], full.Ports)); got != withRules {
		t.Errorf("after add element:\n%s\nwant\n%s", got, withRules)
	}
	if got := load(ElementScript("ferry", "delete", full.Endpoints[:1], full.Ports)); got != withoutRules {
		t.Errorf("after delete element:\n%s\nwant\n%s", got, withoutRules)
	}
}

// TestAttachUpdatesElements: attaching and releasing a machine edits the
// sets in place (the tables are never replaced, so the cost of a change
// does not grow with the machines there are), and what the kernel holds
// afterwards is exactly the ruleset a full reload gives.
func TestAttachUpdatesElements(t *testing.T) {
	s := newTestService(t, Config{})
	ctx := context.Background()
	if _, err := s.Create(ctx, CreateRequest{Name: "front"}); err != nil {
		t.Fatal(err)
	}
	handles := func() string {
		t.Helper()
		var hs []string
		for _, fam := range []string{"inet", "bridge"} {
			out, err := s.ns.run(ctx, "", "nft", "-a", "list", "table", fam, s.cfg.Table)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(out), "\n") // table inet ferry { # handle N
			hs = append(hs, first)
		}
		return strings.Join(hs, "; ")
	}
	ruleset := func() string {
		t.Helper()
		out, err := s.ns.run(ctx, "", "nft", "list", "ruleset")
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	before := handles()
	for i, m := range []string{"m1", "m2", "m3"} {
		att, err := s.Attach(ctx, AttachRequest{MachineID: m, Name: "web" + m, App: "shop", Networks: []EndpointRequest{{Network: "front"}},
			Ports: []Port{{Protocol: "tcp", HostPort: uint16(18090 + i), GuestPort: 80}}})
		if err != nil {
			t.Fatal(err)
		}
		att.Close()
	}
	if err := s.Release(ctx, "m2"); err != nil {
		t.Fatal(err)
	}
	if after := handles(); after != before {
		t.Errorf("attach or release replaced ferry's tables:\nbefore %s\nafter %s", before, after)
	}
	got := ruleset()
	if !strings.Contains(got, "18090") || strings.Contains(got, "18091") || !strings.Contains(got, "18092") {
		t.Errorf("published ports after attach ×3, release ×1:\n%s", got)
	}
	if err := s.apply(ctx); err != nil {
		t.Fatal(err)
	}
	if want := ruleset(); got != want {
		t.Errorf("elements after attach and release:\n%s\nwant (full reload)\n%s", got, want)
	}
}
