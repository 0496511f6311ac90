// Package cptest runs a control plane and hosts as real processes for
// tests and benchmarks of scale-out: each in its own network namespace,
// connected by veth pairs to a bridge in another (the LAN), on one
// throwaway Postgres. Hosts are `ferry daemon --join` processes entered
// into their namespace's network only (nsenter --net, so /sys and its
// cgroups stay the host's and they boot real VMs); each has its own data
// root, unix socket and address. A host's daemon can be SIGKILLed and its
// link cut, the control plane SIGKILLed and started again; every process,
// VMM and namespace is gone when the test ends.
package cptest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/registry/store/pgtest"
	"github.com/ferryvm/ferry/internal/testimage"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// Token is the control plane's token in a Cluster.
const Token = "cptest-token"

// Image is the busybox test image every host of a cluster has loaded.
const Image = "busybox:cptest"

// Options shape a Cluster.
type Options struct {
	Hosts    int           // how many hosts (not started: Host.Start)
	Replicas int           // how many control plane replicas (0: one), all started
	LeaseTTL time.Duration // the control plane's --lease-ttl (0: its default)
	// CPUOvercommit is the control plane's --cpu-overcommit (0: its
	// default).
	CPUOvercommit int
}

// Cluster is a control plane and its hosts.
type Cluster struct {
	t      testing.TB
	Bin    string // the ferry binary
	DSN    string
	CPAddr string // host:port the first replica listens on, in its namespace
	ttl    time.Duration
	over   int
	// Replicas are the control plane's, each in its own namespace.
	Replicas []*Replica
	Hosts    []*Host
	tar      string // the test image as a tarball
}

// Host is one host of a Cluster.
type Host struct {
	c      *Cluster
	Name   string // its --join-name
	Via    int    // the replica it joins through (an index of Replicas)
	NS     string // its network namespace
	IP     string
	Root   string
	Sock   string
	Daemon *Proc // the running daemon (nil before Start)
	API    *api.Client
}

// Replica is one `ferry controlplane serve` of a Cluster.
type Replica struct {
	c    *Cluster
	NS   string
	Addr string // host:port it listens on, in its namespace
	proc *Proc
}

// Proc is a process started by a Cluster.
type Proc struct {
	cmd  *exec.Cmd
	out  *syncBuf
	done chan struct{}
}

// Log is what p wrote so far.
func (p *Proc) Log() string { return p.out.String() }

// Kill SIGKILLs p and waits for it to be gone.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Exited reports whether p has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *Proc) stop() {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.Kill()
	}
}

// New builds ferry, makes the namespaces, the LAN and the database, and
// starts the control plane; hosts are started with Host.Start. The caller
// checks what booting VMs needs (vmprereq.Require).
func New(t testing.TB, o Options) *Cluster {
	t.Helper()
	prereq.Root(t, "network namespaces and VMs")
	prereq.Tools(t, "ip", "nsenter")
	goBin := prereq.Tool(t, "go")
	c := &Cluster{t: t, ttl: o.LeaseTTL, over: o.CPUOvercommit, DSN: pgtest.DSN(t)}
	c.Bin = filepath.Join(t.TempDir(), "ferry")
	build := exec.Command(goBin, "build", "-o", c.Bin, "github.com/ferryvm/ferry/cmd/ferry")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build ferry: %v\n%s", err, out)
	}
	img, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(Image)
	if err != nil {
		t.Fatal(err)
	}
	c.tar = filepath.Join(t.TempDir(), "image.tar")
	if err := tarball.WriteToFile(c.tar, tag, img); err != nil {
		t.Fatal(err)
	}
	lan := prereq.NetNS(t)
	c.ip(lan, "link", "add", "br0", "type", "bridge")
	c.ip(lan, "link", "set", "br0", "up")
	for i := range max(o.Replicas, 1) {
		r := &Replica{c: c, NS: prereq.NetNS(t), Addr: fmt.Sprintf("10.99.0.%d:7080", i+1)}
		c.plug(lan, r.NS, i, fmt.Sprintf("10.99.0.%d", i+1))
		c.Replicas = append(c.Replicas, r)
	}
	c.CPAddr = c.Replicas[0].Addr
	for i := range o.Hosts {
		ns := prereq.NetNS(t)
		h := &Host{c: c, Name: fmt.Sprintf("host%c", 'a'+i), NS: ns, IP: fmt.Sprintf("10.99.0.%d", 11+i)}
		dir, err := os.MkdirTemp("", "cptest-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		h.Root, h.Sock = filepath.Join(dir, "root"), filepath.Join(dir, "ferry.sock")
		if h.API, err = api.NewClient("unix://"+h.Sock, ""); err != nil {
			t.Fatal(err)
		}
		c.plug(lan, ns, len(c.Replicas)+i, h.IP)
		c.Hosts = append(c.Hosts, h)
		t.Cleanup(h.cleanup)
	}
	// The replicas stop first, so no host converges back what its
	// cleanup destroys.
	t.Cleanup(func() {
		for _, r := range c.Replicas {
			if r.proc != nil {
				r.proc.stop()
			}
		}
	})
	for _, r := range c.Replicas {
		r.Start()
	}
	return c
}

// plug connects ns to the LAN bridge with address ip on its eth0.
func (c *Cluster) plug(lan, ns string, i int, ip string) {
	port := "p" + strconv.Itoa(i)
	c.ip(lan, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
	c.ip(lan, "link", "set", port, "master", "br0", "up")
	c.ip(ns, "addr", "add", ip+"/24", "dev", "eth0")
	c.ip(ns, "link", "set", "eth0", "up")
}

func (c *Cluster) ip(ns string, args ...string) {
	c.t.Helper()
	if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
		c.t.Fatalf("ip -n %s %v: %v: %s", ns, args, err, out)
	}
}

// start runs the ferry binary with args inside ns's network namespace.
func (c *Cluster) start(ns string, args ...string) *Proc {
	c.t.Helper()
	cmd := c.command(ns, args...)
	p := &Proc{cmd: cmd, out: &syncBuf{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start ferry %v: %v", args, err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p
}

func (c *Cluster) command(ns string, args ...string) *exec.Cmd {
	cmd := exec.Command("nsenter", append([]string{"--net=/run/netns/" + ns, "--", c.Bin}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(filepath.Dir(c.tar), "docker"))
	if os.Getenv("FERRY_QEMU_ACCEL") == "" {
		// Tests check behaviour, not speed: some hosts' /dev/kvm opens
		// but cannot run guests.
		cmd.Env = append(cmd.Env, "FERRY_QEMU_ACCEL=tcg")
	}
	return cmd
}

// Start starts r (after Kill: again, on the same database) and waits
// until it answers.
func (r *Replica) Start() {
	c := r.c
	c.t.Helper()
	args := []string{"controlplane", "serve", "--db", c.DSN, "--token", Token, "--addr", r.Addr}
	if c.ttl > 0 {
		args = append(args, "--lease-ttl", c.ttl.String())
	}
	if c.over > 0 {
		args = append(args, "--cpu-overcommit", strconv.Itoa(c.over))
	}
	r.proc = c.start(r.NS, args...)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, _, err := r.Ferry("ps", "-q"); err == nil {
			return
		}
		if r.proc.Exited() || time.Now().After(deadline) {
			c.t.Fatalf("control plane replica %s does not answer:\n%s", r.Addr, r.proc.Log())
		}
	}
}

// Kill SIGKILLs r.
func (r *Replica) Kill() { r.proc.Kill() }

// Ferry runs `ferry -H tcp://REPLICA --token T args…` in r's namespace
// (the client needs only its address) and returns its stdout, stderr and
// error.
func (r *Replica) Ferry(args ...string) (string, string, error) {
	return run(r.c.command(r.NS, append([]string{"-H", "tcp://" + r.Addr, "--token", Token}, args...)...))
}

// StartCP starts the first replica again (after KillCP).
func (c *Cluster) StartCP() { c.Replicas[0].Start() }

// KillCP SIGKILLs the first replica.
func (c *Cluster) KillCP() { c.Replicas[0].Kill() }

// CPLog is the replicas' output.
func (c *Cluster) CPLog() string {
	var sb strings.Builder
	for _, r := range c.Replicas {
		fmt.Fprintf(&sb, "--- replica %s:\n%s\n", r.Addr, r.proc.Log())
	}
	return sb.String()
}

// Ferry runs `ferry -H tcp://CP …` through the first replica.
func (c *Cluster) Ferry(args ...string) (string, string, error) { return c.Replicas[0].Ferry(args...) }

func run(cmd *exec.Cmd) (string, string, error) {
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// Start starts h's daemon, joined to the control plane, and waits for its
// API; on the first start it loads the test image.
func (h *Host) Start() {
	t := h.c.t
	t.Helper()
	first := h.Daemon == nil
	// No template at start: the tests count each host's VMMs, and a
	// host's first machine builds its template as it needs it.
	h.Daemon = h.c.start(h.NS, "daemon", "--root", h.Root, "--socket", h.Sock, "--docker-socket", "none", "--mirror-addr=", "--prewarm=false", "--spares=false",
		"--api-addr", h.IP+":7070", "--api-token", "cptest-api",
		"--join", "http://"+h.c.Replicas[h.Via].Addr, "--join-token", Token, "--join-name", h.Name)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := h.API.Do(ctx, "GET", "/v1/_ping", nil, nil)
		cancel()
		if err == nil {
			break
		}
		if h.Daemon.Exited() || time.Now().After(deadline) {
			t.Fatalf("%s's daemon does not answer (%v):\n%s", h.Name, err, h.Daemon.Log())
		}
	}
	if first {
		if out, errs, err := h.Ferry("load", "-q", "-i", h.c.tar); err != nil {
			t.Fatalf("%s: load the test image: %v\n%s%s", h.Name, err, out, errs)
		}
	}
}

// Ferry runs `ferry args…` against h's daemon over its unix socket.
func (h *Host) Ferry(args ...string) (string, string, error) {
	cmd := exec.Command(h.c.Bin, append([]string{"-H", "unix://" + h.Sock}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(filepath.Dir(h.c.tar), "docker"))
	return run(cmd)
}

// Log is h's daemon output (of its latest start).
func (h *Host) Log() string {
	if h.Daemon == nil {
		return ""
	}
	return h.Daemon.Log()
}

// Link brings h's only link to the LAN up or down.
func (h *Host) Link(up bool) {
	state := "down"
	if up {
		state = "up"
	}
	h.c.ip(h.NS, "link", "set", "eth0", state)
}

// VMMs counts the VMM processes of h's machines by machine ID: those
// whose command line names a machine directory under h's root and carries
// that machine's marker (ferry-ID) as an argument, as the daemon adopts
// them (the machine's helpers only start with it).
func (h *Host) VMMs() map[string]int {
	out := map[string]int{}
	dir := filepath.Join(h.Root, "machines") + "/"
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		_, rest, ok := strings.Cut(string(b), dir)
		if !ok {
			continue
		}
		id, _, _ := strings.Cut(rest, "/")
		if slices.Contains(strings.Split(string(b), "\x00"), "ferry-"+id) {
			out[id]++
		}
	}
	return out
}

// cleanup destroys h's machines, stops its daemon, and kills any VMM left.
func (h *Host) cleanup() {
	if h.Daemon != nil && !h.Daemon.Exited() {
		if out, _, err := h.Ferry("ps", "-a", "-q"); err == nil {
			for _, id := range strings.Fields(out) {
				_, _, _ = h.Ferry("rm", "-f", id)
			}
		}
		h.Daemon.stop()
	}
	for range 50 {
		left := h.VMMs()
		if len(left) == 0 {
			break
		}
		killUnder(filepath.Join(h.Root, "machines"))
		time.Sleep(100 * time.Millisecond)
	}
	unmountUnder(h.Root)
}

// killUnder kills the processes whose command line names a path under dir.
func killUnder(dir string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if !strings.Contains(string(b), dir+"/") {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// unmountUnder lazily unmounts whatever is still mounted under dir (a
// daemon SIGKILLed mid-boot may leave one).
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mnts []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mnts = append(mnts, f[4])
		}
	}
	for i := len(mnts) - 1; i >= 0; i-- {
		_ = syscall.Unmount(mnts[i], syscall.MNT_DETACH)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
