// Command network measures the host side of ferry's machine network against
// a plain Linux bridge, in one run (root; every namespace its own, named
// bench-network-*, removed at the end):
//
//   - machine-to-machine TCP throughput (iperf3) and request/response
//     latency on one ferry network, and the same between two namespaces on a
//     plain bridge with no rules: the ratio is ferry's cost;
//   - DNS query latency (p50/p99) of a network's resolver, for a machine's
//     name and for a name forwarded upstream;
//   - the same throughput and latency with 10, 100 and 500 machines on 50
//     networks (the packet path must stay flat: every per-machine fact is a
//     set element), and the time one attach takes at each size.
//
// A "machine" is a namespace plugged into its network's bridge where its TAP
// was, under the TAP's name (so under exactly the TAP's rules), as the
// network package's tests do: VMs under TCG would measure QEMU, not the
// host's path.
//
//	go run ./bench/network [-t 3s] [-rr 20000] [-dns 5000] [-scale 10,100,500]
//	go run ./bench/network -overlay   # across two hosts: VXLAN against the underlay
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netns"
	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/network"
)

var (
	dur   = flag.Duration("t", 3*time.Second, "iperf3 duration per measurement")
	rrN   = flag.Int("rr", 20000, "request/response round trips per latency measurement")
	dnsN  = flag.Int("dns", 5000, "DNS queries per name")
	scale = flag.String("scale", "10,100,500", "machine counts for the flatness run (on 50 networks)")
)

var (
	created []string // namespaces to delete
	dirs    []string // temporary directories to remove
)

func main() {
	flag.Parse()
	log.SetFlags(0)
	if os.Geteuid() != 0 {
		log.Fatal("bench/network: needs root (network namespaces)")
	}
	for _, t := range []string{"ip", "nft", "iperf3", "nsenter"} {
		if _, err := exec.LookPath(t); err != nil {
			log.Fatalf("bench/network: needs %s (scripts/deps.sh installs it)", t)
		}
	}
	defer cleanup()
	if *overlay {
		runOverlay()
		return
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("load average at start: %s", load)

	// Plain bridge: two namespaces, no rules.
	host := newNS("plain")
	sh(host, "ip", "link", "add", "br0", "type", "bridge")
	sh(host, "ip", "link", "set", "br0", "up")
	pa := plug(host, "br0", "va", "02:00:00:00:00:0a", "10.99.0.2/24")
	pb := plug(host, "br0", "vb", "02:00:00:00:00:0b", "10.99.0.3/24")
	plainTput, plainLat := measure(pa, pb, "10.99.0.3")

	// ferry: one network, two machines.
	svc, fns := service("ferry")
	ctx := context.Background()
	n, err := svc.Create(ctx, network.CreateRequest{Name: "bench"})
	check(err)
	ma, mb := machine(svc, fns, n, "a"), machine(svc, fns, n, "b")
	ferryTput, ferryLat := measure(ma, mb, n4(mb))
	fmt.Printf("\n%-34s %12s %12s %12s %12s\n", "machine to machine, one network", "Gbit/s", "RR p50 µs", "RR p99 µs", "RR mean µs")
	row := func(name string, t float64, l lat) {
		fmt.Printf("%-34s %12.2f %12.1f %12.1f %12.1f\n", name, t, l.p50, l.p99, l.mean)
	}
	row("plain bridge, no rules", plainTput, plainLat)
	row("ferry network", ferryTput, ferryLat)
	fmt.Printf("%-34s %12.2f× %11.2f× %11.2f×\n", "ferry / plain", ferryTput/plainTput, ferryLat.p50/plainLat.p50, ferryLat.p99/plainLat.p99)

	// DNS from machine a to its gateway.
	fmt.Printf("\n%-34s %12s %12s\n", "DNS, from a machine to its gateway", "p50 µs", "p99 µs")
	for _, q := range []string{"b", "b.bench.internal", "example.com"} {
		l := dnsLatency(ma, n.Gateway, q)
		fmt.Printf("%-34s %12.1f %12.1f\n", q, l.p50, l.p99)
	}

	// Flatness: the same two machines while 10..500 machines sit on 50
	// networks.
	fmt.Printf("\n%-10s %-9s %12s %12s %12s %16s\n", "machines", "networks", "Gbit/s", "RR p50 µs", "RR p99 µs", "attach ms (last)")
	nets := []*network.Network{n}
	for i := 1; i < 50; i++ {
		ni, err := svc.Create(ctx, network.CreateRequest{Name: fmt.Sprintf("n%d", i)})
		check(err)
		nets = append(nets, ni)
	}
	have := 2
	for _, s := range strings.Split(*scale, ",") {
		want, err := strconv.Atoi(s)
		check(err)
		var last time.Duration
		for ; have < want; have++ {
			t0 := time.Now()
			att, err := svc.Attach(ctx, network.AttachRequest{MachineID: fmt.Sprintf("m%d", have), App: "bench",
				Networks: []network.EndpointRequest{{Network: nets[have%len(nets)].Name}},
				Ports:    []network.Port{{Protocol: "tcp", HostPort: uint16(20000 + have), GuestPort: 80}}})
			check(err)
			last = time.Since(t0)
			att.Close()
		}
		t, l := measure(ma, mb, n4(mb))
		fmt.Printf("%-10d %-9d %12.2f %12.1f %12.1f %16.1f\n", want, len(nets), t, l.p50, l.p99, float64(last.Microseconds())/1000)
	}
	load, _ = os.ReadFile("/proc/loadavg")
	fmt.Printf("\nload average at end: %s", load)
}

func check(err error) {
	if err != nil {
		cleanup()
		log.Fatal(err)
	}
}

func cleanup() {
	for _, n := range created {
		_ = exec.Command("ip", "netns", "del", n).Run()
	}
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
	created = nil
}

type nsName string

func newNS(tag string) nsName {
	name := fmt.Sprintf("bench-network-%d-%s", os.Getpid(), tag)
	out, err := exec.Command("ip", "netns", "add", name).CombinedOutput()
	if err != nil {
		log.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	created = append(created, name)
	sh(nsName(name), "ip", "link", "set", "lo", "up")
	return nsName(name)
}

func sh(n nsName, args ...string) {
	cmd := exec.Command("nsenter", append([]string{"--net=/var/run/netns/" + string(n), "--"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		check(fmt.Errorf("%s in %s: %v: %s", strings.Join(args, " "), n, err, out))
	}
}

// plug puts a fresh namespace on bridge br of host through a veth whose
// host end is called port.
func plug(host nsName, br, port, mac, addr string, gw ...string) nsName {
	g := newNS(port)
	sh(host, "ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", string(g))
	sh(host, "ip", "link", "set", port, "master", br, "up")
	sh(g, "ip", "link", "set", "eth0", "address", mac)
	sh(g, "ip", "addr", "add", addr, "dev", "eth0")
	sh(g, "ip", "link", "set", "eth0", "up")
	if len(gw) > 0 {
		sh(g, "ip", "route", "add", "default", "via", gw[0])
	}
	return g
}

func service(tag string) (*network.Service, nsName) {
	host := newNS(tag)
	dir, err := os.MkdirTemp("", "bench-network-")
	check(err)
	dirs = append(dirs, dir)
	db, err := bbolt.Open(filepath.Join(dir, "meta.db"), 0o600, nil)
	check(err)
	up := fakeUpstream()
	svc, err := network.Open(context.Background(), db, network.Config{NetNS: string(host), Upstreams: []string{up}})
	check(err)
	return svc, host
}

var eps = map[nsName]network.Endpoint{}

// machine attaches a machine and plugs a namespace where its TAP was.
func machine(svc *network.Service, host nsName, n *network.Network, name string) nsName {
	att, err := svc.Attach(context.Background(), network.AttachRequest{MachineID: name, Name: name, App: "bench",
		Networks: []network.EndpointRequest{{Network: n.Name}}})
	check(err)
	att.Close()
	e := att.Endpoints[0]
	sh(host, "ip", "link", "del", e.Tap)
	g := plug(host, n.Bridge, e.Tap, e.MAC, e.IPv4.String(), e.Gateway.String())
	eps[g] = e
	return g
}

func n4(g nsName) string { return eps[g].IPv4.Addr().String() }

// do runs fn on a thread inside n.
func do(n nsName, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	h, err := netns.GetFromName(string(n))
	if err != nil {
		return err
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		return err
	}
	defer func() { _ = netns.Set(orig) }()
	return fn()
}

type lat struct{ p50, p99, mean float64 }

func stats(ds []time.Duration) lat {
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }
	return lat{p50: us(ds[len(ds)/2]), p99: us(ds[len(ds)*99/100]), mean: us(sum / time.Duration(len(ds)))}
}

// measure runs iperf3 from a to b's address, then a 1-byte TCP
// request/response loop.
func measure(a, b nsName, addr string) (float64, lat) {
	srv := exec.Command("nsenter", "--net=/var/run/netns/"+string(b), "--", "iperf3", "-s", "-1", "-p", "5201")
	check(srv.Start())
	time.Sleep(300 * time.Millisecond)
	out, err := exec.Command("nsenter", "--net=/var/run/netns/"+string(a), "--", "iperf3", "-J", "-c", addr, "-p", "5201",
		"-t", strconv.Itoa(int(dur.Seconds()))).Output()
	_ = srv.Wait()
	check(err)
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	check(json.Unmarshal(out, &r))

	var l net.Listener
	check(do(b, func() (err error) { l, err = net.Listen("tcp4", ":7000"); return err }))
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c)
	}()
	var c net.Conn
	check(do(a, func() (err error) { c, err = net.Dial("tcp4", net.JoinHostPort(addr, "7000")); return err }))
	ds := make([]time.Duration, 0, *rrN)
	buf := []byte{1}
	for range *rrN {
		t0 := time.Now()
		if _, err := c.Write(buf); err != nil {
			check(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			check(err)
		}
		ds = append(ds, time.Since(t0))
	}
	c.Close()
	l.Close()
	return r.End.SumReceived.BitsPerSecond / 1e9, stats(ds)
}

func dnsLatency(g nsName, server netip.Addr, name string) lat {
	var conn *dns.Conn
	check(do(g, func() (err error) {
		conn, err = dns.Dial("udp", net.JoinHostPort(server.String(), "53"))
		return err
	}))
	defer conn.Close()
	ds := make([]time.Duration, 0, *dnsN)
	for i := range *dnsN {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), dns.TypeA)
		m.Id = uint16(i)
		t0 := time.Now()
		check(conn.WriteMsg(m))
		r, err := conn.ReadMsg()
		check(err)
		if len(r.Answer) == 0 {
			check(fmt.Errorf("dns %s: no answer (%s)", name, dns.RcodeToString[r.Rcode]))
		}
		ds = append(ds, time.Since(t0))
	}
	return stats(ds)
}

// fakeUpstream is the host's resolver on loopback: every A question gets
// 192.0.2.1 (so "forwarded" costs one loopback round trip more).
func fakeUpstream() string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	check(err)
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A: net.IPv4(192, 0, 2, 1)})
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	return pc.LocalAddr().String()
}
