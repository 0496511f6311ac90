package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"

	"github.com/ferryvm/ferry/internal/network"
)

var overlay = flag.Bool("overlay", false, "measure cross-host networks instead: two hosts, machine to machine over VXLAN against host to host over the underlay")

// runOverlay measures the cross-host path (internal/network's overlays):
// two hosts, each a namespace with its own network service, linked by a
// veth pair (the underlay); one network spanning both with one machine on
// each. TCP throughput and request/response latency machine to machine
// (bridge, VXLAN over the underlay, bridge, with ferry's rules on both
// hosts) against the two hosts over the underlay veth directly.
func runOverlay() {
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("load average at start: %s", load)
	ctx := context.Background()
	sub, sub6 := netip.MustParsePrefix("10.129.0.0/16"), netip.MustParsePrefix("fdbe:0:0:1::/64")
	var svcs [2]*network.Service
	var hosts [2]nsName
	for i := range svcs {
		svcs[i], hosts[i] = service(fmt.Sprintf("h%d", i+1))
	}
	sh(hosts[0], "ip", "link", "add", "under0", "type", "veth", "peer", "name", "under0", "netns", string(hosts[1]))
	under := [2]netip.Addr{netip.MustParseAddr("10.99.9.1"), netip.MustParseAddr("10.99.9.2")}
	for i, h := range hosts {
		sh(h, "ip", "addr", "add", under[i].String()+"/24", "dev", "under0")
		sh(h, "ip", "link", "set", "under0", "up")
	}
	ov := func(i int) network.Overlay {
		b := sub.Addr().As4()
		b[2], b[3] = byte(i+1), 1
		gw := netip.AddrFrom4(b)
		u := sub6.Addr().As16()
		u[14], u[15] = byte(i+1), 1
		return network.Overlay{Network: "span", VNI: 7, Subnet: sub, Subnet6: sub6, Gateway: gw, Gateway6: netip.AddrFrom16(u),
			IPRange: netip.PrefixFrom(gw, 24).Masked()}
	}
	var ms [2]nsName
	for i, s := range svcs {
		check(s.SetOverlays(ctx, under[i], []network.Overlay{ov(i)}))
		nets, err := s.List(ctx, network.ListOptions{})
		check(err)
		for _, n := range nets {
			if n.Name == "span" {
				ms[i] = machine(s, hosts[i], n, fmt.Sprintf("m%d", i+1))
				sh(ms[i], "ip", "link", "set", "eth0", "mtu", fmt.Sprint(eps[ms[i]].MTU))
			}
		}
	}
	for i, s := range svcs {
		o := ov(i)
		e := eps[ms[1-i]]
		o.Peers = []network.Peer{{Host: fmt.Sprint(1 - i), Underlay: under[1-i],
			Machines: []network.RemoteMachine{{Name: e.Name, MAC: e.MAC, IPv4: e.IPv4.Addr(), IPv6: e.IPv6.Addr()}}}}
		check(s.SetOverlays(ctx, under[i], []network.Overlay{o}))
	}
	underTput, underLat := measure(hosts[0], hosts[1], under[1].String())
	ovTput, ovLat := measure(ms[0], ms[1], n4(ms[1]))
	fmt.Printf("\n%-34s %12s %12s %12s %12s\n", "across two hosts", "Gbit/s", "RR p50 µs", "RR p99 µs", "RR mean µs")
	row := func(name string, t float64, l lat) {
		fmt.Printf("%-34s %12.2f %12.1f %12.1f %12.1f\n", name, t, l.p50, l.p99, l.mean)
	}
	row("host to host, underlay veth", underTput, underLat)
	row(fmt.Sprintf("machine to machine, VXLAN (MTU %d)", eps[ms[0]].MTU), ovTput, ovLat)
	fmt.Printf("%-34s %12.2f× %11.2f× %11.2f×\n", "VXLAN / underlay", ovTput/underTput, ovLat.p50/underLat.p50, ovLat.p99/underLat.p99)
	load, _ = os.ReadFile("/proc/loadavg")
	fmt.Printf("\nload average at end: %s", load)
}
