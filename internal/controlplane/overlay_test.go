package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/network"
	"github.com/ferryvm/ferry/internal/registry/store/pgtest"
)

// TestSyncOverlay: every app gets an overlay network (not the default
// app), each with its own VNI, /16 and ULA /64; each host on a network its
// own /24 (gateway its first address), kept across syncs, so no two hosts
// hand out one address; a host learns the live peers' underlay addresses
// and machines (only those inside the reporting host's range), not its
// own and not those of a host whose lease expired; a new report replaces
// the old one. Concurrent syncs of many hosts (two stores, as two
// replicas) never share a range.
func TestSyncOverlay(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	st, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	st2, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st2.Close() }()
	hosts := []Host{hostA, hostA, hostA}
	for i := range hosts {
		hosts[i].ID, hosts[i].Addr = fmt.Sprintf("host-%d", i), fmt.Sprintf("http://10.0.0.%d:7070", i+1)
		if _, err := st.Register(ctx, hosts[i], time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	for _, app := range []string{"shop", "default"} {
		if _, err := st.PlaceMachine(ctx, MachineSpec{App: app, Name: "m", CPUs: 1, MemoryMB: 64}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.SyncOverlay(ctx, "nope", OverlayReport{Underlay: netip.MustParseAddr("10.0.0.9")}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("sync of an unregistered host: %v, want not found", err)
	}
	if _, err := st.SyncOverlay(ctx, hosts[0].ID, OverlayReport{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("sync without an underlay address: %v, want invalid", err)
	}
	other, err := st.CreateNetwork(ctx, "other", "")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := st2.CreateNetwork(ctx, "other", ""); err != nil || again != other {
		t.Fatalf("creating network other again: %+v %v, want %+v", again, err, other)
	}
	under := func(i int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("192.168.50.%d", i+1)) }
	syncHost := func(st *Store, i int, ms map[string][]network.RemoteMachine) map[string]network.Overlay {
		t.Helper()
		ovs, err := st.SyncOverlay(ctx, hosts[i].ID, OverlayReport{Underlay: under(i), Machines: ms})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]network.Overlay{}
		for _, o := range ovs {
			out[o.Network] = o
		}
		return out
	}
	first := syncHost(st, 0, nil)
	if len(first) != 2 {
		t.Fatalf("overlays %+v, want shop and other (never default)", first)
	}
	shop := first["shop"]
	if shop.App != "shop" || shop.VNI == 0 || shop.VNI == first["other"].VNI || !OverlayPool.Contains(shop.Subnet.Addr()) || shop.Subnet.Bits() != 16 ||
		shop.Subnet.Overlaps(first["other"].Subnet) || shop.Subnet6.Bits() != 64 || shop.Subnet6 == first["other"].Subnet6 {
		t.Fatalf("networks shop %+v and other %+v: want their own VNIs and subnets", shop, first["other"])
	}
	if shop.IPRange.Bits() != 24 || !shop.Subnet.Contains(shop.IPRange.Addr()) || !shop.IPRange.Contains(shop.Gateway) || !shop.Subnet6.Contains(shop.Gateway6) || len(shop.Peers) != 0 {
		t.Fatalf("host 0's part of shop: %+v", shop)
	}
	// Host 1 and 2 join; every host's range differs and stays.
	ranges := map[netip.Prefix]int{shop.IPRange: 0}
	for i := 1; i < 3; i++ {
		o := syncHost(st2, i, nil)["shop"]
		if j, ok := ranges[o.IPRange]; ok {
			t.Fatalf("hosts %d and %d share range %s", i, j, o.IPRange)
		}
		ranges[o.IPRange] = i
	}
	if again := syncHost(st, 0, nil)["shop"]; again.IPRange != shop.IPRange || again.Gateway != shop.Gateway {
		t.Fatalf("host 0's range moved: %s, then %s", shop.IPRange, again.IPRange)
	}
	// Machines: host 1 reports one in its range and one outside it.
	r1 := syncHost(st, 1, nil)["shop"].IPRange
	mine := network.RemoteMachine{Name: "web", App: "shop", Aliases: []string{"www"}, MAC: "02:fe:00:00:00:01", IPv4: r1.Addr().Next().Next()}
	stray := network.RemoteMachine{Name: "stray", MAC: "02:fe:00:00:00:02", IPv4: shop.IPRange.Addr().Next().Next()}
	syncHost(st, 1, map[string][]network.RemoteMachine{"shop": {mine, stray}})
	peers := syncHost(st, 0, nil)["shop"].Peers
	if len(peers) != 2 || peers[0].Host != hosts[1].ID || peers[0].Underlay != under(1) || len(peers[0].Machines) != 1 ||
		peers[0].Machines[0].Name != "web" || peers[0].Machines[0].Aliases[0] != "www" || peers[1].Host != hosts[2].ID || len(peers[1].Machines) != 0 {
		t.Fatalf("host 0's peers on shop: %+v, want host 1 with web (not stray) and host 2 with nothing", peers)
	}
	// The underlay address is the host's (hosts.underlay_ip): a
	// registration without one keeps what the overlay sync reported.
	if _, err := st.Register(ctx, hosts[1], time.Minute); err != nil {
		t.Fatal(err)
	}
	hs, err := st.Hosts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if h.ID == hosts[1].ID && h.UnderlayIP != under(1).String() {
			t.Fatalf("host 1's underlay after it registered again: %q, want %s", h.UnderlayIP, under(1))
		}
	}
	for _, p := range syncHost(st, 1, map[string][]network.RemoteMachine{"shop": {mine}})["shop"].Peers {
		if p.Host == hosts[1].ID {
			t.Fatal("host 1 is its own peer")
		}
	}
	// A new report replaces the old; an expired host is no peer.
	syncHost(st, 1, nil)
	if _, err := st.Renew(ctx, hosts[2].ID, 1, hostA.Free, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	peers = syncHost(st, 0, nil)["shop"].Peers
	if len(peers) != 1 || peers[0].Host != hosts[1].ID || len(peers[0].Machines) != 0 {
		t.Fatalf("peers after host 1 reported nothing and host 2 expired: %+v", peers)
	}

	// Many hosts joining at once through two replicas: distinct ranges.
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[netip.Prefix]string{}
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		h := hostA
		h.ID = fmt.Sprintf("burst-%d", i)
		if _, err := st.Register(ctx, h, time.Minute); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func(s *Store) {
			defer wg.Done()
			ovs, err := s.SyncOverlay(ctx, h.ID, OverlayReport{Underlay: netip.MustParseAddr("192.168.51.1")})
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, o := range ovs {
				if o.Network != "shop" {
					continue
				}
				if other, ok := seen[o.IPRange]; ok {
					errs <- fmt.Errorf("%s and %s share %s", h.ID, other, o.IPRange)
				}
				seen[o.IPRange] = h.ID
			}
		}([]*Store{st, st2}[i%2])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestOverlayRangesReclaimed: a network holds 254 host ranges; the 255th
// host is refused with one line, until a host's lease has been expired for
// OverlayReclaimAfter: then its range goes to the newcomer.
func TestOverlayRangesReclaimed(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	if _, err := st.CreateNetwork(ctx, "wide", ""); err != nil {
		t.Fatal(err)
	}
	rep := OverlayReport{Underlay: netip.MustParseAddr("192.168.52.1")}
	join := func(i int) ([]network.Overlay, error) {
		h := hostA
		h.ID = fmt.Sprintf("wide-%d", i)
		if _, err := st.Register(ctx, h, time.Minute); err != nil {
			t.Fatal(err)
		}
		return st.SyncOverlay(ctx, h.ID, rep)
	}
	var first netip.Prefix
	for i := 0; i < 254; i++ {
		ovs, err := join(i)
		if err != nil {
			t.Fatalf("host %d: %v", i, err)
		}
		if i == 0 {
			first = ovs[0].IPRange
		}
	}
	_, err = join(254)
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "all 254 host ranges are taken") {
		t.Fatalf("the 255th host: %v, want unavailable", err)
	}
	if _, err := st.Renew(ctx, "wide-0", 1, hostA.Free, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if _, err := join(254); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("with host 0 expired for less than an hour: %v, want still unavailable", err)
	}
	defer func(d time.Duration) { OverlayReclaimAfter = d }(OverlayReclaimAfter)
	OverlayReclaimAfter = 10 * time.Millisecond
	ovs, err := join(254)
	if err != nil || ovs[0].IPRange != first {
		t.Fatalf("the 255th host once host 0 expired long enough: %+v %v, want host 0's range %s", ovs, err, first)
	}
}
