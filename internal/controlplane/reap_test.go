package controlplane

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"
)

// TestReapMovesMachinesOfLostHosts: when h1's lease expires, its started
// machines without volumes are placed again on live hosts with their
// generation; its volume machine stays (its data is on h1); h1's desired
// set no longer holds the moved machine, also after it registers again
// (so it stops its copy); two replicas reaping at once move each machine
// once.
func TestReapMovesMachinesOfLostHosts(t *testing.T) {
	ctx := context.Background()
	st, dsn := placementDB(t, host("h1", 8, 16384, 1000), host("h2", 8, 4096, 1000), host("h3", 8, 4096, 1000))
	other, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Close() }()
	if v, err := st.CreateVolume(ctx, "db", "data", 100); err != nil || v.HostID != "h1" { // equal disks: the first in id order
		t.Fatalf("volume: %+v %v", v, err)
	}
	var onH1 []string
	for _, name := range []string{"w1", "w2"} {
		p, err := st.PlaceMachine(ctx, MachineSpec{App: "web", Name: name, CPUs: 1, MemoryMB: 1024})
		if err != nil || p.HostID != "h1" {
			t.Fatalf("placement %s: %+v %v (h1 has the most memory)", name, p, err)
		}
		onH1 = append(onH1, p.ID)
	}
	pg, err := st.PlaceMachine(ctx, MachineSpec{App: "db", Name: "pg", CPUs: 1, MemoryMB: 512, Volume: "data"})
	if err != nil {
		t.Fatal(err)
	}
	if moved, err := st.Reap(ctx); err != nil || len(moved) != 0 {
		t.Fatalf("reap with every lease live: %v %v", moved, err)
	}
	if _, err := st.Renew(ctx, pg.HostID, 1, Capacity{CPUs: 8, MemoryMB: 16384, DiskMB: 900}, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	var mu sync.Mutex
	var moved []Placement
	var wg sync.WaitGroup
	for _, s := range []*Store{st, other} {
		wg.Go(func() {
			m, err := s.Reap(ctx)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			moved = append(moved, m...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(moved) != 2 {
		t.Fatalf("reaped %+v, want w1 and w2 moved once each", moved)
	}
	seen := map[string]bool{}
	for _, p := range moved {
		if p.HostID == pg.HostID || p.Generation != 1 || seen[p.ID] {
			t.Fatalf("moved %+v", moved)
		}
		seen[p.ID] = true
	}
	if !seen[onH1[0]] || !seen[onH1[1]] {
		t.Fatalf("moved %+v, want %v", moved, onH1)
	}
	if _, err := st.Register(ctx, host(pg.HostID, 8, 16384, 1000), time.Minute); err != nil {
		t.Fatal(err)
	}
	ms, err := st.HostMachines(ctx, pg.HostID)
	if err != nil || len(ms) != 1 || ms[0].Name != "pg" || ms[0].Volume != "data" {
		t.Fatalf("h1's desired set after it returned: %+v %v, want only pg", ms, err)
	}
	if moved, err := st.Reap(ctx); err != nil || len(moved) != 0 {
		t.Fatalf("a second reap: %v %v", moved, err)
	}
}

// TestReaperWaitsForHostsAfterStart: a replica starting while every lease
// has expired (the control plane was away longer than a lease) leaves the
// machines where they are for its grace period, so hosts that come back a
// little later than the first keep theirs; a host still expired after it
// is lost, and its machine moves to the one that renewed.
func TestReaperWaitsForHostsAfterStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := placementStore(t, host("h1", 8, 16384, 1000), host("h2", 8, 4096, 1000))
	p, err := st.PlaceMachine(ctx, MachineSpec{App: "web", Name: "w1", CPUs: 1, MemoryMB: 256, Restart: "always"})
	if err != nil || p.HostID != "h1" {
		t.Fatalf("placement: %+v %v (h1 has the most memory)", p, err)
	}
	for _, id := range []string{"h1", "h2"} { // both expire: the control plane was away
		if _, err := st.Register(ctx, host(id, 8, 4096, 1000), time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	srv, err := NewServer(st, "t", 200*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv.ReapGrace = 2 * time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-served }()
	start := time.Now()
	// h2 is back first; h1 is slower (or lost: only the grace tells).
	if _, err := st.Register(ctx, host("h2", 8, 4096, 1000), time.Minute); err != nil {
		t.Fatal(err)
	}
	where := func() string {
		ms, err := st.AppMachines(ctx, "web")
		if err != nil || len(ms) != 1 {
			t.Fatalf("machines: %+v %v", ms, err)
		}
		return ms[0].HostID
	}
	for time.Since(start) < srv.ReapGrace*3/4 {
		if h := where(); h != "h1" {
			t.Fatalf("w1 moved to %s %s after the replica started, within its grace of %s", h, time.Since(start), srv.ReapGrace)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for deadline := time.Now().Add(30 * time.Second); where() != "h2"; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("w1 still on h1 long after the grace; h1's lease has expired")
		}
	}
}
