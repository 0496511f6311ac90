package network

import (
	"context"
	"io"
	"slices"
	"sync"
	"testing"
)

// TestGateways: a watcher hears of every gateway (those there before it
// and new ones, up; removed ones, down); a service listening with Listen
// on a gateway at a Served port answers the network's guests, while the
// same host's other ports on that address stay shut to them.
func TestGateways(t *testing.T) {
	requireNetAdmin(t)
	s := newTestService(t, Config{Served: []Port{{Protocol: "tcp", HostPort: 5000}}})
	ctx := context.Background()
	a, err := s.Create(ctx, CreateRequest{Name: "front"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var events []string
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	if err := s.WatchGateways(wctx, func(g Gateway, up bool) {
		mu.Lock()
		defer mu.Unlock()
		ev := "down "
		if up {
			ev = "up "
		}
		events = append(events, ev+g.Network+" "+g.IPv4.String()+" "+g.IPv6.String())
	}); err != nil {
		t.Fatal(err)
	}
	b, err := s.Create(ctx, CreateRequest{Name: "back", IPv6: new(bool)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, "back"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := slices.Clone(events)
	mu.Unlock()
	want := []string{"up front " + a.Gateway.String() + " " + a.Gateway6.String(),
		"up back " + b.Gateway.String() + " invalid IP", "down back " + b.Gateway.String() + " invalid IP"}
	if !slices.Equal(got, want) {
		t.Errorf("gateway events\n%q\nwant\n%q", got, want)
	}
	if gws, err := s.Gateways(ctx); err != nil || len(gws) != 1 || gws[0].IPv4 != a.Gateway || gws[0].Bridge != a.Bridge {
		t.Errorf("gateways %+v, %v", gws, err)
	}

	for _, addr := range []string{hostPort(a.Gateway, 5000), hostPort(a.Gateway6, 5000)} {
		l, err := s.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				io.WriteString(c, "mirror")
				c.Close()
			}
		}()
	}
	serveTCP(t, s.ns, hostPort(a.Gateway, 5001), "not served")
	att, err := s.Attach(ctx, AttachRequest{MachineID: "m1", Name: "web", App: "shop", Networks: []EndpointRequest{{Network: "front"}}})
	if err != nil {
		t.Fatal(err)
	}
	att.Close()
	g := plugGuest(t, s, att.Endpoints[0], a.Bridge)
	reach(t, g.ns, "tcp", hostPort(a.Gateway, 5000), "mirror")
	reach(t, g.ns, "tcp", hostPort(a.Gateway6, 5000), "mirror")
	unreach(t, g.ns, "tcp", hostPort(a.Gateway, 5001), "a port the daemon does not serve")

	stop()
	if _, err := s.Create(ctx, CreateRequest{Name: "later"}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != len(want) {
		t.Errorf("a stopped watch still hears: %q", events[len(want):])
	}
}
