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
// capacity and API address and keeps its lease live; a host whose daemon
// is SIGKILLed loses its lease while the other keeps its own, and on
// restart registers again as the same host with a new generation; a host
// whose link is cut loses its lease and, when the link returns, takes a
// newer generation by itself.
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
	d1, d2 := daemon(h1, cp1), daemon(h2, cp2)

	ctx := context.Background()
	st, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	byAddr := func() map[string]HostStatus {
		hs, err := st.Hosts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]HostStatus{}
		for _, h := range hs {
			out[h.Addr] = h
		}
		return out
	}
	a1, a2 := "http://"+addrs[h1]+":7070", "http://"+addrs[h2]+":7070"
	wait := func(what string, ok func(map[string]HostStatus) bool) map[string]HostStatus {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			hs := byAddr()
			if ok(hs) {
				return hs
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: hosts %+v\nhost 1:\n%s\nhost 2:\n%s", what, hs, d1.out, d2.out)
			}
		}
	}
	hs := wait("both hosts to join", func(hs map[string]HostStatus) bool { return hs[a1].Live && hs[a2].Live })
	first := hs[a1]
	if first.ID == hs[a2].ID || first.Generation != 1 || first.Size.CPUs <= 0 || first.Size.MemoryMB <= 0 || first.Size.DiskMB <= 0 {
		t.Fatalf("registrations: %+v %+v", first, hs[a2])
	}
	// Leases are renewed: after several TTLs both are still live.
	time.Sleep(5 * time.Second)
	if hs := byAddr(); !hs[a1].Live || !hs[a2].Live || !hs[a1].Renewed.After(first.Renewed) {
		t.Fatalf("leases not renewed: %+v", hs)
	}

	// SIGKILL host 1's daemon: its lease expires, host 2's does not.
	d1.kill()
	wait("host 1's lease to expire", func(hs map[string]HostStatus) bool { return !hs[a1].Live && hs[a2].Live })
	d1 = daemon(h1, cp2) // back, through the other replica this time
	hs = wait("host 1 to register again", func(hs map[string]HostStatus) bool { return hs[a1].Live })
	if hs[a1].ID != first.ID || hs[a1].Generation != 2 {
		t.Fatalf("host 1 after restart: %+v, want id %s generation 2", hs[a1], first.ID)
	}

	// Cut host 2's link: its lease expires; restored, it registers again.
	before := hs[a2].Generation
	ipIn(t, h2, "link", "set", "eth0", "down")
	wait("host 2's lease to expire with its link cut", func(hs map[string]HostStatus) bool { return !hs[a2].Live && hs[a1].Live })
	ipIn(t, h2, "link", "set", "eth0", "up")
	hs = wait("host 2 to take a new lease", func(hs map[string]HostStatus) bool { return hs[a2].Live })
	if hs[a2].Generation != before+1 {
		t.Fatalf("host 2 after its link returned: generation %d, want %d", hs[a2].Generation, before+1)
	}
	if _, err := os.Stat(filepath.Join(roots[h1], "host-id")); err != nil {
		t.Fatal(err)
	}
}
