package controlplane

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/controlplane/cptest"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// TestDaemonsJoinFromNetworkNamespaces: two `ferry controlplane serve`
// replicas and two `ferry daemon --join` hosts, each in its own network
// namespace, connected by veth pairs to a bridge in a fifth one, on one
// Postgres (cptest). Each host registers through a different replica with
// its capacity and API address and keeps its lease live. A machine is
// placed on one; that host's daemon is SIGKILLed: its lease expires while
// the other keeps its own, the replicas' reaper places the machine on the
// survivor, and the victim, restarted, registers again as the same host
// with generation 2 and an empty desired set. Then the survivor's link is
// cut: its lease expires, the machine moves back, and when the link returns
// the survivor takes a newer generation by itself with nothing to run.
func TestDaemonsJoinFromNetworkNamespaces(t *testing.T) {
	prereq.Short(t, "daemons in network namespaces")
	c := cptest.New(t, cptest.Options{Hosts: 2, Replicas: 2, LeaseTTL: 2 * time.Second})
	h1, h2 := c.Hosts[0], c.Hosts[1]
	h1.Via, h2.Via = 0, 1
	h1.Start()
	h2.Start()

	ctx := context.Background()
	st, err := Open(ctx, c.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	byHost := func() map[*cptest.Host]HostStatus {
		hs, err := st.Hosts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[*cptest.Host]HostStatus{}
		for _, h := range hs {
			for _, x := range c.Hosts {
				if h.Addr == "http://"+x.IP+":7070" {
					out[x] = h
				}
			}
		}
		return out
	}
	wait := func(what string, ok func(map[*cptest.Host]HostStatus) bool) map[*cptest.Host]HostStatus {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			hs := byHost()
			if ok(hs) {
				return hs
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: hosts %+v\nhost 1:\n%s\nhost 2:\n%s\n%s", what, hs, h1.Log(), h2.Log(), c.CPLog())
			}
		}
	}
	desired := func(hostID string) map[string]int64 {
		ms, err := st.HostMachines(ctx, hostID)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for _, m := range ms {
			out[m.Name] = m.PlacedGeneration
		}
		return out
	}
	hs := wait("both hosts to join", func(hs map[*cptest.Host]HostStatus) bool { return hs[h1].Live && hs[h2].Live })
	first := hs[h1]
	if first.ID == hs[h2].ID || first.Generation != 1 || first.Size.CPUs <= 0 || first.Size.MemoryMB <= 0 || first.Size.DiskMB <= 0 {
		t.Fatalf("registrations: %+v %+v", first, hs[h2])
	}
	// Leases are renewed: after several TTLs both are still live.
	time.Sleep(5 * time.Second)
	if hs := byHost(); !hs[h1].Live || !hs[h2].Live || !hs[h1].Renewed.After(first.Renewed) {
		t.Fatalf("leases not renewed: %+v", hs)
	}

	// A machine placed on one host (the victim); SIGKILL the victim's
	// daemon: its lease expires, the survivor's does not, and the control
	// plane places the machine again on the survivor.
	p, err := st.PlaceMachine(ctx, MachineSpec{App: "web", Name: "w1", CPUs: 1, MemoryMB: 64})
	if err != nil {
		t.Fatal(err)
	}
	victim, survivor := h1, h2
	if p.HostID == hs[h2].ID {
		victim, survivor = h2, h1
	}
	vid, sid := hs[victim].ID, hs[survivor].ID
	victim.Daemon.Kill()
	wait("the victim's lease to expire", func(hs map[*cptest.Host]HostStatus) bool { return !hs[victim].Live && hs[survivor].Live })
	wait("the machine to be placed on the survivor", func(map[*cptest.Host]HostStatus) bool { _, ok := desired(sid)["w1"]; return ok })
	victim.Via = 1 - victim.Via // back, through the other replica this time
	victim.Start()
	hs = wait("the victim to register again", func(hs map[*cptest.Host]HostStatus) bool { return hs[victim].Live })
	if hs[victim].ID != vid || hs[victim].Generation != 2 {
		t.Fatalf("victim after restart: %+v, want id %s generation 2", hs[victim], vid)
	}
	if d := desired(vid); len(d) != 0 {
		t.Fatalf("the returning host's desired set: %v, want empty (w1 runs elsewhere)", d)
	}

	// Cut the survivor's link: its lease expires and w1 moves back under
	// the victim's new generation; restored, the survivor takes a new
	// generation by itself and w1 is no longer its to run.
	before := hs[survivor].Generation
	survivor.Link(false)
	wait("the survivor's lease to expire with its link cut", func(hs map[*cptest.Host]HostStatus) bool { return !hs[survivor].Live && hs[victim].Live })
	wait("the machine to move back", func(map[*cptest.Host]HostStatus) bool { return desired(vid)["w1"] == 2 })
	survivor.Link(true)
	hs = wait("the survivor to take a new lease", func(hs map[*cptest.Host]HostStatus) bool { return hs[survivor].Live })
	if hs[survivor].Generation != before+1 || len(desired(sid)) != 0 {
		t.Fatalf("survivor after its link returned: generation %d (want %d), desired %v (want none)", hs[survivor].Generation, before+1, desired(sid))
	}
	if _, err := os.Stat(filepath.Join(h1.Root, "host-id")); err != nil {
		t.Fatal(err)
	}
}
