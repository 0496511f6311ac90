package controlplane

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/registry/store/pgtest"
)

func placementStore(t *testing.T, hosts ...Host) *Store {
	t.Helper()
	st, _ := placementDB(t, hosts...)
	return st
}

// placementDB is a store on a fresh database with hosts registered, and
// the database's DSN.
func placementDB(t *testing.T, hosts ...Host) (*Store, string) {
	t.Helper()
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	st, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	for _, h := range hosts {
		if _, err := st.Register(ctx, h, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	return st, dsn
}

func host(id string, cpus int, memMB, diskMB int64) Host {
	c := Capacity{CPUs: cpus, MemoryMB: memMB, DiskMB: diskMB}
	return Host{ID: id, Addr: "http://" + id + ":7070", Size: c, Free: c}
}

// TestPlacementSpreadsByFreeCapacity: each machine goes to a host with the
// most memory free (ties to the one with fewest of the app's machines), so
// hosts fill evenly by what they have left; a machine no
// host fits is refused with one line, and nothing is reserved for it.
func TestPlacementSpreadsByFreeCapacity(t *testing.T) {
	ctx := context.Background()
	st := placementStore(t, host("h1", 8, 4096, 1000), host("h2", 8, 4096, 1000), host("h3", 8, 8192, 1000))
	free := map[string]int64{"h1": 4096, "h2": 4096, "h3": 8192}
	count := map[string]int{}
	for i := range 8 {
		p, err := st.PlaceMachine(ctx, MachineSpec{App: "web", Name: fmt.Sprintf("m%d", i), CPUs: 1, MemoryMB: 1024})
		if err != nil {
			t.Fatal(err)
		}
		if p.Generation != 1 || p.HostAddr != "http://"+p.HostID+":7070" {
			t.Fatalf("placement: %+v", p)
		}
		for id, f := range free {
			if f > free[p.HostID] {
				t.Fatalf("machine %d went to %s (%d MiB free) while %s had %d MiB free", i, p.HostID, free[p.HostID], id, f)
			}
		}
		free[p.HostID] -= 1024
		count[p.HostID]++
	}
	// h3 has twice the memory: it takes the first four, then they alternate.
	if count["h1"] != 2 || count["h2"] != 1 || count["h3"] != 5 {
		t.Fatalf("placements per host: %v, want h1 2, h2 1, h3 5", count)
	}
	hs, _ := st.Hosts(ctx)
	for _, h := range hs {
		if h.Free.MemoryMB != free[h.ID] || h.Free.CPUs != 8*DefaultCPUOvercommit-count[h.ID] {
			t.Fatalf("host %s free after placement: %+v, want %d MiB", h.ID, h.Free, free[h.ID])
		}
	}
	_, err := st.PlaceMachine(ctx, MachineSpec{App: "web", Name: "huge", CPUs: 1, MemoryMB: 4096})
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "no live host has 1 CPUs and 4096 MiB") {
		t.Fatalf("a machine no host fits: %v", err)
	}
	if _, err := st.PlaceMachine(ctx, MachineSpec{App: "web", Name: "m0", CPUs: 1, MemoryMB: 1}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("a second m0: %v", err)
	}
	// A host whose lease expired gets nothing.
	if _, err := st.Renew(ctx, "h3", 1, Capacity{CPUs: 8, MemoryMB: 8192}, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	for i := range 2 {
		p, err := st.PlaceMachine(ctx, MachineSpec{App: "api", Name: fmt.Sprintf("a%d", i), CPUs: 1, MemoryMB: 512})
		if err != nil || p.HostID == "h3" {
			t.Fatalf("placement with h3's lease expired: %+v %v", p, err)
		}
	}
}

// TestPlacementFollowsTheVolume: a volume gets a home (the host with most
// disk free) and a machine mounting it runs there, even where another
// host has more memory free; when the home's lease has expired, or it is
// full, the machine is refused rather than placed away from its data.
func TestPlacementFollowsTheVolume(t *testing.T) {
	ctx := context.Background()
	st := placementStore(t, host("h1", 4, 2048, 500), host("h2", 4, 16384, 100))
	v, err := st.CreateVolume(ctx, "db", "data", 200)
	if err != nil || v.HostID != "h1" {
		t.Fatalf("volume home: %+v %v, want h1 (the only host with 200 MiB free)", v, err)
	}
	if _, err := st.CreateVolume(ctx, "db", "big", 1000); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("a volume no host fits: %v", err)
	}
	p, err := st.PlaceMachine(ctx, MachineSpec{App: "db", Name: "pg", CPUs: 1, MemoryMB: 1024, Volume: "data"})
	if err != nil || p.HostID != "h1" {
		t.Fatalf("machine with volume data: %+v %v, want h1", p, err)
	}
	if p, err := st.PlaceMachine(ctx, MachineSpec{App: "db", Name: "free", CPUs: 1, MemoryMB: 1024}); err != nil || p.HostID != "h2" {
		t.Fatalf("machine without a volume: %+v %v, want h2 (most memory)", p, err)
	}
	_, err = st.PlaceMachine(ctx, MachineSpec{App: "db", Name: "pg2", CPUs: 1, MemoryMB: 2048, Volume: "data"})
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "volume data lives on host h1") {
		t.Fatalf("machine too big for its volume's host: %v", err)
	}
	if _, err := st.PlaceMachine(ctx, MachineSpec{App: "db", Name: "x", CPUs: 1, MemoryMB: 1, Volume: "nope"}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("unknown volume: %v", err)
	}
	if _, err := st.Renew(ctx, "h1", 1, Capacity{CPUs: 4, MemoryMB: 2048, DiskMB: 300}, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	_, err = st.PlaceMachine(ctx, MachineSpec{App: "db", Name: "pg3", CPUs: 1, MemoryMB: 256, Volume: "data"})
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "whose lease has expired") {
		t.Fatalf("machine whose volume's host is lost: %v", err)
	}
}

// TestPlacementNeverOverbooks: 20 placements at once on 3 hosts with room
// for 4 machines each: exactly 12 succeed, 4 per host, none negative.
func TestPlacementNeverOverbooks(t *testing.T) {
	ctx := context.Background()
	st := placementStore(t, host("h1", 4, 4096, 1000), host("h2", 4, 4096, 1000), host("h3", 4, 4096, 1000))
	var mu sync.Mutex
	count := map[string]int{}
	var refused int
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			p, err := st.PlaceMachine(ctx, MachineSpec{App: "web", Name: fmt.Sprintf("m%d", i), CPUs: 1, MemoryMB: 1024})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, errdefs.ErrUnavailable):
				refused++
			case err != nil:
				t.Error(err)
			default:
				count[p.HostID]++
			}
		})
	}
	wg.Wait()
	if refused != 8 || count["h1"] != 4 || count["h2"] != 4 || count["h3"] != 4 {
		t.Fatalf("concurrent placements: %v, %d refused; want 4 per host, 8 refused", count, refused)
	}
	hs, _ := st.Hosts(ctx)
	for _, h := range hs {
		if h.Free.MemoryMB != 0 || h.Free.CPUs != 4*DefaultCPUOvercommit-4 {
			t.Fatalf("host %s free after filling: %+v", h.ID, h.Free)
		}
	}
}

// TestPlacementCPUsOvercommitted: a host offers its CPUs times the
// overcommit to machines; what its placed machines take stays taken
// across its renewals (which report all its CPUs free, as HostCapacity
// does), and a machine beyond is refused with one line.
func TestPlacementCPUsOvercommitted(t *testing.T) {
	ctx := context.Background()
	st := placementStore(t)
	st.CPUOvercommit = 2
	h := host("h1", 2, 65536, 1000)
	l, err := st.Register(ctx, h, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, err := st.PlaceMachine(ctx, MachineSpec{App: "web", Name: fmt.Sprintf("m%d", i), CPUs: 1, MemoryMB: 64}); err != nil {
			t.Fatalf("machine %d of 4 on 2 CPUs at 2x: %v", i, err)
		}
	}
	if _, err := st.Renew(ctx, "h1", l.Generation, h.Free, time.Minute); err != nil {
		t.Fatal(err)
	}
	_, err = st.PlaceMachine(ctx, MachineSpec{App: "web", Name: "m4", CPUs: 1, MemoryMB: 64})
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "CPUs") {
		t.Fatalf("a fifth machine after a renewal: %v, want refused for CPUs", err)
	}
	if hs, _ := st.Hosts(ctx); len(hs) != 1 || hs[0].Free.CPUs != 0 {
		t.Fatalf("hosts: %+v, want 0 CPUs free", hs)
	}
	if err := st.RemoveMachine(ctx, mustMachine(t, st, "m0")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PlaceMachine(ctx, MachineSpec{App: "web", Name: "m4", CPUs: 1, MemoryMB: 64}); err != nil {
		t.Fatalf("after a removal: %v", err)
	}
}

func mustMachine(t *testing.T, st *Store, name string) string {
	t.Helper()
	m, err := st.Machine(context.Background(), "web", name)
	if err != nil {
		t.Fatal(err)
	}
	return m.ID
}
