package controlplane

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/registry/store/pgtest"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// proc is a ferry process started in a network namespace.
type proc struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{}
}

func startIn(t *testing.T, ns, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	p := &proc{cmd: cmd, out: &bytes.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", args, err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop ends p with SIGTERM (SIGKILL after 10 s).
func (p *proc) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Logf("%v did not stop on SIGTERM:\n%s", p.cmd.Args, p.out)
	}
}

func (p *proc) kill() { _ = p.cmd.Process.Kill(); <-p.done }

func ipIn(t *testing.T, ns string, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s %v: %v: %s", ns, args, err, out)
	}
}

// TestDaemonsJoinFromNetworkNamespaces: two `ferry controlplane serve`
// replicas and two `ferry daemon --join` hosts, each in its own network
// namespace, connected by veth pairs to a bridge in a fifth one, on one
// Postgres. Each host registers through a different replica with its
// capacity and API address and keeps its lease live. A machine is placed
// on one; that host's daemon is SIGKILLed: its lease expires while the
// other keeps its own, the replicas' reaper places the machine on the
// survivor, and the victim, restarted, registers again as the same host
// with generation 2 and an empty desired set. Then the survivor's link is
// cut: its lease expires, the machine moves back, and when the link returns
// the survivor takes a newer generation by itself with nothing to run.
func TestDaemonsJoinFromNetworkNamespaces(t *testing.T) {
	prereq.Short(t, "daemons in network namespaces")
	prereq.Tool(t, "ip")
	goBin := prereq.Tool(t, "go")
	lan, cp1, cp2, h1, h2 := prereq.NetNS(t), prereq.NetNS(t), prereq.NetNS(t), prereq.NetNS(t), prereq.NetNS(t)
	dsn := pgtest.DSN(t)
	bin := filepath.Join(t.TempDir(), "ferry")
	if out, err := exec.Command(goBin, "build", "-o", bin, "github.com/ferryvm/ferry/cmd/ferry").CombinedOutput(); err != nil {
		t.Fatalf("build ferry: %v\n%s", err, out)
	}
	ipIn(t, lan, "link", "add", "br0", "type", "bridge")
	ipIn(t, lan, "link", "set", "br0", "up")
	addrs := map[string]string{cp1: "10.99.0.1", cp2: "10.99.0.2", h1: "10.99.0.11", h2: "10.99.0.12"}
	for i, ns := range []string{cp1, cp2, h1, h2} {
		port := "p" + string(rune('0'+i))
		ipIn(t, lan, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
		ipIn(t, lan, "link", "set", port, "master", "br0", "up")
		ipIn(t, ns, "addr", "add", addrs[ns]+"/24", "dev", "eth0")
		ipIn(t, ns, "link", "set", "eth0", "up")
	}
	const token = "cp-test-token"
	for _, ns := range []string{cp1, cp2} {
		startIn(t, ns, bin, "controlplane", "serve", "--db", dsn, "--token", token, "--addr", addrs[ns]+":7080", "--lease-ttl", "2s")
	}
	roots := map[string]string{h1: t.TempDir(), h2: t.TempDir()}
	daemon := func(ns, cp string) *proc {
		r := roots[ns]
		return startIn(t, ns, bin, "daemon", "--root", r, "--socket", filepath.Join(r, "ferry.sock"), "--docker-socket", "none",
			"--api-addr", addrs[ns]+":7070", "--api-token", "api-token",
			"--join", "http://"+addrs[cp]+":7080", "--join-token", token)
	}
	procs := map[string]*proc{h1: daemon(h1, cp1), h2: daemon(h2, cp2)}

	ctx := context.Background()
	st, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	apiAddr := func(ns string) string { return "http://" + addrs[ns] + ":7070" }
	byNS := func() map[string]HostStatus {
		hs, err := st.Hosts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]HostStatus{}
		for _, h := range hs {
			for _, ns := range []string{h1, h2} {
				if h.Addr == apiAddr(ns) {
					out[ns] = h
				}
			}
		}
		return out
	}
	wait := func(what string, ok func(map[string]HostStatus) bool) map[string]HostStatus {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			hs := byNS()
			if ok(hs) {
				return hs
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: hosts %+v\nhost 1:\n%s\nhost 2:\n%s", what, hs, procs[h1].out, procs[h2].out)
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
	hs := wait("both hosts to join", func(hs map[string]HostStatus) bool { return hs[h1].Live && hs[h2].Live })
	first := hs[h1]
	if first.ID == hs[h2].ID || first.Generation != 1 || first.Size.CPUs <= 0 || first.Size.MemoryMB <= 0 || first.Size.DiskMB <= 0 {
		t.Fatalf("registrations: %+v %+v", first, hs[h2])
	}
	// Leases are renewed: after several TTLs both are still live.
	time.Sleep(5 * time.Second)
	if hs := byNS(); !hs[h1].Live || !hs[h2].Live || !hs[h1].Renewed.After(first.Renewed) {
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
	procs[victim].kill()
	wait("the victim's lease to expire", func(hs map[string]HostStatus) bool { return !hs[victim].Live && hs[survivor].Live })
	wait("the machine to be placed on the survivor", func(map[string]HostStatus) bool { _, ok := desired(sid)["w1"]; return ok })
	procs[victim] = daemon(victim, cp2) // back, through the other replica this time
	hs = wait("the victim to register again", func(hs map[string]HostStatus) bool { return hs[victim].Live })
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
	ipIn(t, survivor, "link", "set", "eth0", "down")
	wait("the survivor's lease to expire with its link cut", func(hs map[string]HostStatus) bool { return !hs[survivor].Live && hs[victim].Live })
	wait("the machine to move back", func(map[string]HostStatus) bool { return desired(vid)["w1"] == 2 })
	ipIn(t, survivor, "link", "set", "eth0", "up")
	hs = wait("the survivor to take a new lease", func(hs map[string]HostStatus) bool { return hs[survivor].Live })
	if hs[survivor].Generation != before+1 || len(desired(sid)) != 0 {
		t.Fatalf("survivor after its link returned: generation %d (want %d), desired %v (want none)", hs[survivor].Generation, before+1, desired(sid))
	}
	if _, err := os.Stat(filepath.Join(roots[h1], "host-id")); err != nil {
		t.Fatal(err)
	}
}
