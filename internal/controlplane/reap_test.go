package controlplane

import (
	"context"
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
