package network

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// guestStandIn puts a stand-in for att's guest on the bridge: a fresh
// netns holding one end of a veth pair with the guest's address and default
// route (the other end is enslaved to the bridge, as the TAP would be), and
// a TCP server on port that answers with greeting.
func guestStandIn(t *testing.T, nw *Network, att *Attachment, port int, greeting string) ns {
	t.Helper()
	g := ns{prereq.NetNS(t)}
	host := "vh" + att.Tap[3:]
	ip(t, "-n", nw.cfg.NetNS, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", g.name)
	ip(t, "-n", nw.cfg.NetNS, "link", "set", host, "master", nw.cfg.Bridge, "up")
	ip(t, "-n", g.name, "addr", "add", att.Addresses[0].String(), "dev", "eth0")
	ip(t, "-n", g.name, "link", "set", "eth0", "up")
	ip(t, "-n", g.name, "route", "add", "default", "via", att.Gateway.String())
	var l net.Listener
	if err := g.do(func() (err error) {
		l, err = net.Listen("tcp4", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var u net.PacketConn
	if err := g.do(func() (err error) {
		u, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	go func() { // UDP: answer every datagram with greeting
		buf := make([]byte, 512)
		for {
			_, from, err := u.ReadFrom(buf)
			if err != nil {
				return
			}
			u.WriteTo([]byte(greeting), from)
		}
	}()
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
	return g
}

// fetch connects from inside namespace n to addr and returns what it reads.
func fetch(t *testing.T, n ns, addr string) string {
	t.Helper()
	var c net.Conn
	if err := n.do(func() (err error) {
		c, err = net.DialTimeout("tcp4", addr, 3*time.Second)
		return err
	}); err != nil {
		t.Fatalf("connect %s in netns %s: %v", addr, n.name, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read from %s: %v", addr, err)
	}
	return string(b)
}

func TestPublishedPortsReachable(t *testing.T) {
	nw, _ := newTestNetwork(t, Config{})
	ctx := context.Background()
	a, err := nw.Attach(ctx, "web", []Port{{HostPort: 18080, GuestPort: 80}, {GuestPort: 80}, {HostPort: 15353, GuestPort: 80, Protocol: "udp"}})
	if err != nil {
		t.Fatal(err)
	}
	a.File.Close()
	guestStandIn(t, nw, a, 80, "hello from web\n")

	random := a.Ports[1].HostPort
	for _, addr := range []string{
		"127.0.0.1:18080",                   // localhost: output DNAT + route_localnet
		fmt.Sprintf("%s:18080", a.Gateway),  // a host address
		fmt.Sprintf("127.0.0.1:%d", random), // -p GUEST picked a free port
	} {
		if got := fetch(t, nw.ns, addr); got != "hello from web\n" {
			t.Errorf("%s answered %q", addr, got)
		}
	}

	var got string
	if err := nw.ns.do(func() error {
		c, err := net.Dial("udp4", "127.0.0.1:15353")
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		c.Write([]byte("ping"))
		buf := make([]byte, 512)
		n, err := c.Read(buf)
		got = string(buf[:n])
		return err
	}); err != nil || got != "hello from web\n" {
		t.Errorf("udp 127.0.0.1:15353 answered %q, %v", got, err)
	}

	// A second machine reaches the first directly and through the published
	// port on the gateway (hairpin NAT).
	b, err := nw.Attach(ctx, "client", nil)
	if err != nil {
		t.Fatal(err)
	}
	b.File.Close()
	g2 := guestStandIn(t, nw, b, 81, "unused")
	if got := fetch(t, g2, fmt.Sprintf("%s:80", a.IP())); got != "hello from web\n" {
		t.Errorf("machine to machine: %q", got)
	}
	if got := fetch(t, g2, fmt.Sprintf("%s:18080", a.Gateway)); got != "hello from web\n" {
		t.Errorf("hairpin through the published port: %q", got)
	}

	// Released: the port no longer forwards.
	if err := nw.Release(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	err = nw.ns.do(func() error {
		c, err := net.DialTimeout("tcp4", "127.0.0.1:18080", time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
	if err == nil {
		t.Error("127.0.0.1:18080 still answers after release")
	}
}

func TestPortInUse(t *testing.T) {
	nw, _ := newTestNetwork(t, Config{})
	ctx := context.Background()
	var l net.Listener
	if err := nw.ns.do(func() (err error) { l, err = net.Listen("tcp4", ":18081"); return err }); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	before := snapshot(t, nw)

	_, err := nw.Attach(ctx, "m1", []Port{{HostPort: 18081, GuestPort: 80, Protocol: "tcp"}})
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("attach with a busy port: %v, want conflict 'already in use'", err)
	}
	a, err := nw.Attach(ctx, "m2", []Port{{HostPort: 18082, GuestPort: 80, Protocol: "tcp"}})
	if err != nil {
		t.Fatal(err)
	}
	a.File.Close()
	mid := snapshot(t, nw)
	_, err = nw.Attach(ctx, "m3", []Port{{HostPort: 18082, GuestPort: 80, Protocol: "tcp"}})
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "another machine") {
		t.Fatalf("attach with a published port: %v, want conflict", err)
	}
	if after := snapshot(t, nw); !after.equal(mid) {
		t.Errorf("failed attach left things behind:\nbefore %+v\nafter  %+v", mid, after)
	}
	if atts, _ := nw.Attachments(); len(atts) != 1 {
		t.Errorf("records: %+v", atts)
	}
	nw.Release(ctx, "m2")
	if after := snapshot(t, nw); !after.equal(before) {
		t.Errorf("state differs after release:\nbefore %+v\nafter  %+v", before, after)
	}
}

func TestSubnetExhausted(t *testing.T) {
	nw, _ := newTestNetwork(t, Config{Subnet: mustPrefix("10.214.0.0/30")}) // one machine
	ctx := context.Background()
	a, err := nw.Attach(ctx, "m1", nil)
	if err != nil {
		t.Fatal(err)
	}
	a.File.Close()
	before := snapshot(t, nw)
	_, err = nw.Attach(ctx, "m2", []Port{{HostPort: 18083, GuestPort: 80, Protocol: "tcp"}})
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "exhausted") {
		t.Fatalf("attach on a full subnet: %v", err)
	}
	if after := snapshot(t, nw); !after.equal(before) {
		t.Errorf("failed attach left things behind:\nbefore %+v\nafter  %+v", before, after)
	}
	nw.Release(ctx, "m1")
	if b, err := nw.Attach(ctx, "m2", nil); err != nil {
		t.Errorf("after release: %v", err)
	} else {
		b.File.Close()
	}
}

func TestReconcile(t *testing.T) {
	nw, _ := newTestNetwork(t, Config{})
	ctx := context.Background()
	before := snapshot(t, nw)
	var keep *Attachment
	for i, id := range []string{"live", "dead1", "dead2"} {
		a, err := nw.Attach(ctx, id, []Port{{HostPort: uint16(18090 + i), GuestPort: 80, Protocol: "tcp"}})
		if err != nil {
			t.Fatal(err)
		}
		a.File.Close()
		if id == "live" {
			keep = a
		}
	}
	// An orphan TAP with no record (a crash before the record was written
	// by an older daemon, or a lost database) and a stray port mapping.
	f, err := openTap(nw.ns, TapName("ghost"), 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := nw.addPorts(ctx, mustAddr("10.213.0.200"), []Port{{HostPort: 18099, GuestPort: 80, Protocol: "tcp"}}); err != nil {
		t.Fatal(err)
	}

	if err := nw.Reconcile(ctx, []string{"live"}); err != nil {
		t.Fatal(err)
	}
	atts, _ := nw.Attachments()
	if len(atts) != 1 || atts[0].MachineID != "live" {
		t.Fatalf("records after reconcile: %+v", atts)
	}
	s := snapshot(t, nw)
	want := append(append([]string(nil), before.Links...), keep.Tap)
	if strings.Join(s.Links, ",") != strings.Join(sorted(want), ",") {
		t.Errorf("links %v, want %v", s.Links, sorted(want))
	}
	elems, _ := nw.listPorts(ctx)
	if len(elems) != 1 || elems[0].IP != keep.IP() {
		t.Errorf("port map %+v, want only the live machine's", elems)
	}
	nw.Reconcile(ctx, nil)
	if after := snapshot(t, nw); !after.equal(before) {
		t.Errorf("reconcile with no live machines left things:\nbefore %+v\nafter  %+v", before, after)
	}
}

// TestPublishOnOneHostAddress: -p 127.0.0.1:HOST:GUEST forwards connections
// to 127.0.0.1 only, not to the namespace's other addresses; a port on every
// address and one on the gateway address coexist with it.
func TestPublishOnOneHostAddress(t *testing.T) {
	nw, _ := newTestNetwork(t, Config{})
	ctx := context.Background()
	lo := mustAddr("127.0.0.1")
	a, err := nw.Attach(ctx, "web", []Port{{Protocol: "tcp", HostIP: lo, HostPort: 18180, GuestPort: 80}})
	if err != nil {
		t.Fatal(err)
	}
	a.File.Close()
	if len(a.Ports) != 1 || a.Ports[0].HostIP != lo {
		t.Fatalf("attached ports %+v lost the host address", a.Ports)
	}
	guestStandIn(t, nw, a, 80, "hello from web\n")
	if got := fetch(t, nw.ns, "127.0.0.1:18180"); got != "hello from web\n" {
		t.Errorf("127.0.0.1:18180 answered %q", got)
	}
	refused := func(addr string) {
		t.Helper()
		err := nw.ns.do(func() error {
			c, err := net.DialTimeout("tcp4", addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err == nil {
			t.Errorf("%s answers: the port is published on 127.0.0.1 only", addr)
		}
	}
	refused(fmt.Sprintf("%s:18180", a.Gateway))

	// The same port on another address of the host is free to publish; on
	// every address it is not (it would take 127.0.0.1:18180 too).
	_, err = nw.Attach(ctx, "all", []Port{{Protocol: "tcp", HostPort: 18180, GuestPort: 80}})
	if !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("publish 18180 on every address while 127.0.0.1:18180 is taken: %v, want conflict", err)
	}
	b, err := nw.Attach(ctx, "gw", []Port{{Protocol: "tcp", HostIP: a.Gateway, HostPort: 18180, GuestPort: 81}})
	if err != nil {
		t.Fatalf("publish on the gateway address beside 127.0.0.1: %v", err)
	}
	b.File.Close()
	guestStandIn(t, nw, b, 81, "hello from gw\n")
	if got := fetch(t, nw.ns, fmt.Sprintf("%s:18180", a.Gateway)); got != "hello from gw\n" {
		t.Errorf("gateway:18180 answered %q", got)
	}
	if got := fetch(t, nw.ns, "127.0.0.1:18180"); got != "hello from web\n" {
		t.Errorf("127.0.0.1:18180 answered %q after the gateway's was published", got)
	}

	// An address the host does not have, or IPv6 (not yet), is refused up
	// front.
	if _, err := nw.Attach(ctx, "x", []Port{{Protocol: "tcp", HostIP: mustAddr("192.0.2.7"), HostPort: 18181, GuestPort: 80}}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("publish on a foreign address: %v, want invalid argument", err)
	}
	if _, err := nw.Attach(ctx, "x", []Port{{Protocol: "tcp", HostIP: mustAddr("::1"), HostPort: 18181, GuestPort: 80}}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("publish on ::1: %v, want invalid argument (IPv6 not yet)", err)
	}

	for _, id := range []string{"web", "gw"} {
		if err := nw.Release(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if elems, _ := nw.listPorts(ctx); len(elems) != 0 {
		t.Errorf("port maps after release: %+v", elems)
	}
	refused("127.0.0.1:18180")
}
