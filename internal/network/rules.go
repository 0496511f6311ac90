package network

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// Rules is every kernel rule ferry needs, as data: the networks, the
// endpoints on them and the published ports. Script renders it as one nft
// transaction that replaces ferry's own tables whole (`table inet T` for
// routing, NAT and the host's input; `table bridge T` for what may leave a
// TAP), so applying it is atomic, idempotent and the same after a daemon
// restart. Every per-machine or per-network fact is an element of a set or
// map; the rule lists are fixed, so a packet costs the same few hash
// lookups with 10 machines or 500.
//
// inet T:
//
//	raw_prerouting  from a bridge: drop 127/8 and ::1, either way (route_localnet
//	                is on for publishing to 127.0.0.1; CVE-2020-8558)
//	prerouting/output (nat)  published ports: DNAT through @ports4/@ports6
//	                (a host address) or @ports4any/@ports6any (any local address);
//	                not [::1], which the service proxies (proxy.go)
//	forward         internal networks talk to themselves only; from a bridge:
//	                same bridge or a published port (ct status dnat) or out to
//	                the world (not to another network, not to 169.254/16 unless
//	                allowed); into a bridge: replies and published ports only
//	input           from a bridge: only the bridge's own gateway addresses, and
//	                there only DNS (@served), ping and neighbour discovery
//	postrouting     masquerade egress, hairpin and 127.0.0.1 connections
//
// bridge T (prerouting, before the bridge decides anything), for frames from
// a TAP in @taps: IPv4 and IPv6 must come from the TAP's own MAC and
// addresses (@tap_ip4, @tap_ip6: TAP . MAC . address, its ULA and EUI-64
// link-local ones; one lookup accepts the common frame; "::" only for
// duplicate address detection of its own addresses), ARP must speak for the TAP's own MAC and
// IPv4 address, neighbour advertisements only for its own addresses (@tap_nd),
// no router advertisements or redirects;
// nothing else (another source MAC, VLAN tags, other ethertypes) leaves a
// TAP.
type Rules struct {
	Table     string
	Networks  []*Network
	Endpoints []Endpoint
	Ports     []PortRule
	// AllowLinkLocal lets guests reach 169.254.0.0/16 (cloud metadata)
	// through the host.
	AllowLinkLocal bool
	// Served are the ports guests may reach on their gateways; DNS (53/udp,
	// 53/tcp) is always served.
	Served []Port
}

// PortRule is a published port and the machine addresses it forwards to.
type PortRule struct {
	Port
	IPv4 netip.Addr
	IPv6 netip.Addr // zero: the machine has no IPv6 address
}

// eui64 is the link-local address a guest kernel derives from mac.
func eui64(mac string) (netip.Addr, bool) {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return netip.Addr{}, false
	}
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	a[8], a[9], a[10] = hw[0]^0x02, hw[1], hw[2]
	a[11], a[12] = 0xff, 0xfe
	a[13], a[14], a[15] = hw[3], hw[4], hw[5]
	return netip.AddrFrom16(a), true
}

// machineElements are the set and map elements that endpoints and
// published ports add, by "family set" — all of a machine's own rules, so
// attaching or releasing it is adding or deleting exactly these.
func machineElements(endpoints []Endpoint, ports []PortRule) map[string][]string {
	el := map[string][]string{}
	add := func(set, e string) { el[set] = append(el[set], e) }
	for _, p := range ports {
		v4, v6 := true, p.IPv6.IsValid()
		if p.HostIP.IsValid() {
			v4, v6 = p.HostIP.Is4(), v6 && p.HostIP.Is6()
		}
		key := fmt.Sprintf("%s . %d", p.Protocol, p.HostPort)
		specific := p.HostIP.IsValid() && !p.HostIP.IsUnspecified()
		if v4 && p.IPv4.IsValid() {
			val := fmt.Sprintf(" : %s . %d", p.IPv4, p.GuestPort)
			if specific {
				add("inet ports4", p.HostIP.String()+" . "+key+val)
			} else {
				add("inet ports4any", key+val)
			}
		}
		if v6 {
			val := fmt.Sprintf(" : %s . %d", p.IPv6, p.GuestPort)
			if specific {
				add("inet ports6", p.HostIP.String()+" . "+key+val)
			} else {
				add("inet ports6any", key+val)
			}
		}
	}
	addIP6 := func(tap, mac string, a netip.Addr) {
		add("bridge tap_ip6", q(tap)+" . "+mac+" . "+a.String())
		b := a.As16()
		add("bridge tap_nd", fmt.Sprintf("%s . 0x%x", q(tap), b[:]))
	}
	for _, e := range endpoints {
		add("bridge taps", q(e.Tap))
		add("bridge tap_mac", q(e.Tap)+" . "+e.MAC)
		if e.IPv4.IsValid() {
			add("bridge tap_ip4", q(e.Tap)+" . "+e.MAC+" . "+e.IPv4.Addr().String())
		}
		if e.IPv6.IsValid() {
			addIP6(e.Tap, e.MAC, e.IPv6.Addr())
		}
		if ll, ok := eui64(e.MAC); ok {
			addIP6(e.Tap, e.MAC, ll)
		}
	}
	return el
}

// ElementScript is the nft script that adds (verb "add") or deletes
// ("delete") one machine's elements: attach and release cost the same with
// 10 machines or 500.
func ElementScript(table, verb string, endpoints []Endpoint, ports []PortRule) string {
	el := machineElements(endpoints, ports)
	keys := make([]string, 0, len(el))
	for k := range el {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fam, name, _ := strings.Cut(k, " ")
		es := el[k]
		if verb == "delete" && strings.HasPrefix(name, "ports") {
			for i, e := range es { // a map element is deleted by its key
				es[i], _, _ = strings.Cut(e, " : ")
			}
		}
		fmt.Fprintf(&b, "%s element %s %s %s { %s }\n", verb, fam, table, name, strings.Join(es, ", "))
	}
	return b.String()
}

// set renders a named set or map with its elements (sorted, so the same
// Rules give the same script).
func set(b *strings.Builder, kind, name, typ, flags string, elems []string) {
	slices.Sort(elems)
	elems = slices.Compact(elems)
	fmt.Fprintf(b, "\t%s %s {\n\t\ttype %s\n", kind, name, typ)
	if flags != "" {
		fmt.Fprintf(b, "\t\tflags %s\n", flags)
	}
	if len(elems) > 0 {
		fmt.Fprintf(b, "\t\telements = { %s }\n", strings.Join(elems, ",\n\t\t\t"))
	}
	b.WriteString("\t}\n")
}

func q(s string) string { return `"` + s + `"` }

// Script renders the rules as an nft -f script.
func (r Rules) Script() string {
	t := r.Table
	nets := slices.Clone(r.Networks)
	slices.SortFunc(nets, func(a, b *Network) int { return cmp.Compare(a.Bridge, b.Bridge) })
	var bridges, internal, samebr, gw4, gw6, sub4, sub6, onnet4, onnet6 []string
	for _, n := range nets {
		bridges = append(bridges, q(n.Bridge))
		samebr = append(samebr, q(n.Bridge)+" . "+q(n.Bridge))
		if n.Internal {
			internal = append(internal, q(n.Bridge))
		}
		gw4 = append(gw4, q(n.Bridge)+" . "+n.Gateway.String())
		sub4 = append(sub4, n.Subnet.String())
		onnet4 = append(onnet4, q(n.Bridge)+" . "+n.Subnet.String())
		if n.IPv6() {
			gw6 = append(gw6, q(n.Bridge)+" . "+n.Gateway6.String())
			sub6 = append(sub6, n.Subnet6.String())
			onnet6 = append(onnet6, q(n.Bridge)+" . "+n.Subnet6.String())
		}
	}
	served := []string{"udp . 53", "tcp . 53"}
	for _, p := range r.Served {
		served = append(served, fmt.Sprintf("%s . %d", p.Protocol, p.HostPort))
	}
	el := machineElements(r.Endpoints, r.Ports)
	p4, p4any, p6, p6any := el["inet ports4"], el["inet ports4any"], el["inet ports6"], el["inet ports6any"]
	taps, tapMAC, tapIP4, tapIP6, tapND := el["bridge taps"], el["bridge tap_mac"], el["bridge tap_ip4"], el["bridge tap_ip6"], el["bridge tap_nd"]

	var b strings.Builder
	// Replace both tables in one transaction: add-then-delete makes the
	// delete valid when a table is absent. The legacy `table ip T` of
	// earlier ferry versions goes too.
	for _, fam := range []string{"inet", "bridge", "ip"} {
		fmt.Fprintf(&b, "add table %s %s\ndelete table %s %s\n", fam, t, fam, t)
	}
	if len(nets) == 0 {
		return b.String() // no network: no tables
	}
	fmt.Fprintf(&b, "table inet %s {\n", t)
	set(&b, "set", "bridges", "ifname", "", bridges)
	set(&b, "set", "internal", "ifname", "", internal)
	set(&b, "set", "samebr", "ifname . ifname", "", samebr)
	set(&b, "set", "gw4", "ifname . ipv4_addr", "", gw4)
	set(&b, "set", "gw6", "ifname . ipv6_addr", "", gw6)
	set(&b, "set", "subnets4", "ipv4_addr", "interval", sub4)
	set(&b, "set", "subnets6", "ipv6_addr", "interval", sub6)
	set(&b, "set", "onnet4", "ifname . ipv4_addr", "interval", onnet4)
	set(&b, "set", "onnet6", "ifname . ipv6_addr", "interval", onnet6)
	set(&b, "set", "served", "inet_proto . inet_service", "", served)
	set(&b, "map", "ports4", "ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service", "", p4)
	set(&b, "map", "ports4any", "inet_proto . inet_service : ipv4_addr . inet_service", "", p4any)
	set(&b, "map", "ports6", "ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service", "", p6)
	set(&b, "map", "ports6any", "inet_proto . inet_service : ipv6_addr . inet_service", "", p6any)
	linkLocal := "\t\tip daddr 169.254.0.0/16 drop comment \"no cloud metadata\"\n"
	if r.AllowLinkLocal {
		linkLocal = ""
	}
	b.WriteString(`	chain raw_prerouting {
		type filter hook prerouting priority raw; policy accept;
		iifname @bridges ip daddr 127.0.0.0/8 drop comment "no host loopback from guests"
		iifname @bridges ip saddr 127.0.0.0/8 drop
		iifname @bridges ip6 daddr ::1 drop
		iifname @bridges ip6 saddr ::1 drop
		iifname . ip daddr @gw4 return
		iifname . ip6 daddr @gw6 return
		iifname . ip daddr @onnet4 notrack comment "machine to machine on one network (bridged frames br_netfilter shows us): no conntrack"
		iifname . ip6 daddr @onnet6 notrack
	}
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		jump publish
	}
	chain output {
		type nat hook output priority -100; policy accept;
		ip6 daddr ::1 return comment "[::1] ports are proxied: the kernel routes no ::1 packet out"
		jump publish
	}
	chain publish {
		meta nfproto ipv4 dnat ip to ip daddr . meta l4proto . th dport map @ports4
		meta nfproto ipv4 fib daddr type local dnat ip to meta l4proto . th dport map @ports4any
		meta nfproto ipv6 dnat ip6 to ip6 daddr . meta l4proto . th dport map @ports6
		meta nfproto ipv6 fib daddr type local dnat ip6 to meta l4proto . th dport map @ports6any
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname @internal iifname . oifname != @samebr drop comment "internal: no egress"
		oifname @internal iifname . oifname != @samebr drop
		iifname @bridges jump from_guest
		oifname @bridges jump to_guest
	}
	chain from_guest {
		iifname . oifname @samebr accept
		ct state established,related accept
		ct state invalid drop
		ct status dnat accept comment "published ports"
		oifname @bridges drop comment "no traffic between networks"
` + linkLocal + `		ip6 daddr fe80::/10 drop
		accept
	}
	chain to_guest {
		ct state established,related accept
		ct status dnat accept
		drop
	}
	chain input {
		type filter hook input priority filter; policy accept;
		iifname @bridges jump guest_input
	}
	chain guest_input {
		ct state established,related accept
		iifname . ip daddr @gw4 jump gateway
		iifname . ip6 daddr @gw6 jump gateway
		ip6 daddr { fe80::/10, ff02::/16 } icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, mld-listener-report, mld2-listener-report } accept
		drop comment "guests reach the host only for what ferry serves"
	}
	chain gateway {
		meta l4proto . th dport @served accept
		icmp type echo-request accept
		icmpv6 type { echo-request, nd-neighbor-solicit, nd-neighbor-advert } accept
		drop
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr @subnets4 oifname != @bridges masquerade comment "egress"
		ip6 saddr @subnets6 oifname != @bridges masquerade
		oifname @bridges ct status dnat ip saddr @subnets4 masquerade comment "hairpin"
		oifname @bridges ct status dnat ip6 saddr @subnets6 masquerade
		oifname @bridges ip saddr 127.0.0.0/8 masquerade comment "127.0.0.1 ports"
	}
}
`)
	fmt.Fprintf(&b, "table bridge %s {\n", t)
	set(&b, "set", "taps", "ifname", "", taps)
	set(&b, "set", "tap_mac", "ifname . ether_addr", "", tapMAC)
	set(&b, "set", "tap_ip4", "ifname . ether_addr . ipv4_addr", "", tapIP4)
	set(&b, "set", "tap_ip6", "ifname . ether_addr . ipv6_addr", "", tapIP6)
	// The target of a neighbour advertisement (ICMPv6 bytes 8-23), as the
	// raw 128 bits nft 1.0.6 can match (it has no icmpv6 taddr yet).
	b.WriteString("\tset tap_nd {\n\t\ttypeof iifname . @th,64,128\n")
	if len(tapND) > 0 {
		slices.Sort(tapND)
		fmt.Fprintf(&b, "\t\telements = { %s }\n", strings.Join(slices.Compact(tapND), ",\n\t\t\t"))
	}
	b.WriteString("\t}\n")
	b.WriteString(`	chain prerouting {
		type filter hook prerouting priority -300; policy accept;
		ether type ip iifname . ether saddr . ip saddr @tap_ip4 accept comment "a TAP's own IPv4: one lookup"
		ether type ip6 meta l4proto != ipv6-icmp iifname . ether saddr . ip6 saddr @tap_ip6 accept
		iifname != @taps accept
		iifname . ether saddr != @tap_mac drop comment "spoofed MAC"
		ether type arp jump arp_from_tap
		ether type ip6 jump ip6_from_tap
		drop comment "spoofed IPv4, other ethertypes"
	}
	chain arp_from_tap {
		arp htype != 1 drop
		arp ptype != ip drop
		iifname . arp saddr ether . arp saddr ip @tap_ip4 accept
		iifname . arp saddr ether != @tap_mac drop comment "ARP for another MAC"
		arp operation request arp saddr ip 0.0.0.0 accept comment "address probe"
		drop comment "ARP for another machine's address"
	}
	chain ip6_from_tap {
		icmpv6 type { nd-router-advert, nd-redirect } drop comment "no rogue router: the gateway is the only one"
		icmpv6 type nd-neighbor-advert iifname . @th,64,128 != @tap_nd drop comment "spoofed neighbour advertisement"
		iifname . ether saddr . ip6 saddr @tap_ip6 accept
		ip6 saddr :: icmpv6 type nd-neighbor-solicit iifname . @th,64,128 @tap_nd accept comment "duplicate address detection, of its own addresses only"
		ip6 saddr :: icmpv6 type mld2-listener-report accept
		drop comment "spoofed IPv6"
	}
}
`)
	return b.String()
}
