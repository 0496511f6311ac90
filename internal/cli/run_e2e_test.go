package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/machine"
	"github.com/ferryvm/ferry/internal/testimage"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
	"github.com/ferryvm/ferry/internal/testutil/prereq/vmprereq"
)

// forceTCG makes test daemons use QEMU TCG unless FERRY_QEMU_ACCEL says
// otherwise: some hosts' /dev/kvm opens but cannot run guests, and the
// tests check behaviour, not speed.
var forceTCG sync.Once

// warmTestsEnv, "true" or "false", runs every VM test's daemon with that
// --warm-starts (docs/warm-starts.md: the warm path against the whole
// suite); unset, the daemon's default.
const warmTestsEnv = "FERRY_TEST_WARM_STARTS"

// vmEnv is a daemon whose network side lives in a fresh network namespace,
// with the busybox test image loaded as busybox:vm; extra are more daemon
// flags.
func vmEnv(t *testing.T, extra ...string) *vmFerry {
	t.Helper()
	vmprereq.Require(t) // and the daemons boot this tree's ferry-init
	forceTCG.Do(func() {
		if os.Getenv("FERRY_QEMU_ACCEL") == "" {
			os.Setenv("FERRY_QEMU_ACCEL", "tcg")
		}
	})
	ns := prereq.NetNS(t)
	pre := []string{"--netns", ns}
	if v := os.Getenv(warmTestsEnv); v != "" {
		// Before the test's own flags, which win.
		pre = append(pre, "--warm-starts="+v)
	}
	e := &vmFerry{ferryEnv: newFerryEnv(t, append(pre, extra...)...), netns: ns}
	// Machines outlive their daemon by design: destroy them before the
	// daemon stops (cleanups run last-registered first), and kill any VMM
	// still running from this test's root.
	t.Cleanup(func() {
		if r := e.run(nil, "ps", "-a", "-q"); r.code == 0 {
			for _, id := range strings.Fields(r.stdout) {
				e.run(nil, "rm", "-f", id)
			}
		}
		killVMMs(e.root)
	})
	img, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	e.loadImage("busybox:vm", img)
	return e
}

// loadImage loads img into the daemon's cache as ref.
func (e *ferryEnv) loadImage(ref string, img v1.Image) {
	e.t.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		e.t.Fatal(err)
	}
	p := filepath.Join(e.t.TempDir(), "image.tar")
	if err := tarball.WriteToFile(p, tag, img); err != nil {
		e.t.Fatal(err)
	}
	e.ok("load", "-i", p)
}

// killVMMs kills processes whose command line names a path under root (the
// VMMs of a test's machines) and waits for them to go.
func killVMMs(root string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if !strings.Contains(string(b), filepath.Join(root, "machines")) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil {
			continue
		}
		if proc, err := os.FindProcess(pid); err == nil {
			_ = proc.Kill()
		}
	}
}

// vmFerry is a ferryEnv whose daemon's network lives in netns.
type vmFerry struct {
	*ferryEnv
	netns string
}

// inNetns runs a host command inside e's network namespace.
func (e *vmFerry) inNetns(args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", e.netns}, args...)...).CombinedOutput()
	return string(out), err
}

// inspect returns a machine as the API shows it.
func (e *ferryEnv) inspect(ref string) *types.Machine {
	e.t.Helper()
	var ms []*types.Machine
	if err := json.Unmarshal([]byte(e.ok("inspect", ref)), &ms); err != nil || len(ms) != 1 {
		e.t.Fatalf("inspect %s: %v", ref, err)
	}
	return ms[0]
}

func (e *ferryEnv) eventually(what string, timeout time.Duration, f func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %s waiting for %s\nmachines:\n%s\ndaemon log:\n%s", timeout, what, e.run(nil, "ps", "-a"), e.daemonLog)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRunForeground boots real VMs: output, exit status and the run flags.
func TestRunForeground(t *testing.T) {
	e := vmEnv(t)
	t.Parallel()
	if r := e.run(nil, "run", "--rm", "busybox:vm", "echo", "hi"); r.code != 0 || r.stdout != "hi\n" {
		t.Fatalf("run echo hi: %s\ndaemon:\n%s", r, e.daemonLog)
	}
	if r := e.run(nil, "run", "--rm", "busybox:vm", "sh", "-c", "exit 3"); r.code != 3 {
		t.Fatalf("exit status: %s", r)
	}
	r := e.run(nil, "run", "--rm", "-e", "FOO=bar", "--user", "ferry", "-w", "/tmp", "--hostname", "vmhost",
		"busybox:vm", "sh", "-c", `echo "$FOO $(id -u) $(pwd) $(hostname)"`)
	if r.code != 0 || r.stdout != "bar 1000 /tmp vmhost\n" {
		t.Fatalf("flags: %s", r)
	}
	if r := e.run(nil, "run", "--rm", "--entrypoint", "/bin/echo", "busybox:vm", "from", "entrypoint"); r.code != 0 || r.stdout != "from entrypoint\n" {
		t.Fatalf("--entrypoint: %s", r)
	}
	if out := e.ok("ps", "-a", "-q"); out != "" {
		t.Fatalf("--rm left machines: %q", out)
	}
	assertNoLeaks(t, e)
}

// TestDetachedLifecycle: run -d → ps → logs → exec → stop → start → wait → rm.
func TestDetachedLifecycle(t *testing.T) {
	e := vmEnv(t)
	t.Parallel()
	id := strings.TrimSpace(e.ok("run", "-d", "--name", "web", "busybox:vm", "sh", "-c", "echo started; exec sleep 1000"))
	if len(id) != 14 {
		t.Fatalf("run -d printed %q, want a machine id", id)
	}
	if ps := e.ok("ps"); !strings.Contains(ps, id) || !strings.Contains(ps, "web") || !strings.Contains(ps, "Up ") {
		t.Fatalf("ps:\n%s", ps)
	}
	e.eventually("the entrypoint's output in logs", 3*time.Minute, func() bool { return strings.Contains(e.ok("logs", "web"), "started\n") })
	if out := e.ok("exec", "web", "sh", "-c", "echo inside $(hostname)"); out != "inside web\n" {
		t.Fatalf("exec: %q", out)
	}
	if r := e.run(nil, "exec", "web", "sh", "-c", "exit 4"); r.code != 4 {
		t.Fatalf("exec exit status: %s", r)
	}
	e.ok("stop", "-t", "5s", "web")
	if m := e.inspect("web"); m.State != types.StateStopped || m.LastExit == nil || !m.LastExit.RequestedStop {
		t.Fatalf("after stop: %+v", m)
	}
	if ps := e.ok("ps"); strings.Contains(ps, id) {
		t.Fatalf("stopped machine in ps without -a:\n%s", ps)
	}
	e.ok("start", id[:6])
	if m := e.inspect("web"); m.State != types.StateStarted {
		t.Fatalf("after start: %s", m.State)
	}
	before := e.inspect("web").StartedAt
	e.ok("restart", "-t", "5s", "web")
	if m := e.inspect("web"); m.State != types.StateStarted || !m.StartedAt.After(before) {
		t.Fatalf("after restart: %s, started %v (before %v)", m.State, m.StartedAt, before)
	}
	e.ok("kill", "-s", "TERM", "web")
	if out := e.ok("wait", "web"); out != "143\n" {
		t.Fatalf("wait after SIGTERM printed %q, want 143", out)
	}
	e.ok("rm", "web")
	if out := e.ok("ps", "-a", "-q"); out != "" {
		t.Fatalf("rm left %q", out)
	}
	assertNoLeaks(t, e)
}

// TestPublishedPortAndMachineToMachine: `-d -p 18080:80` with busybox httpd
// serves a file to a client on the host side (in the daemon's netns), and
// two machines of one image get different addresses and reach each other.
func TestPublishedPortAndMachineToMachine(t *testing.T) {
	e := vmEnv(t)
	t.Parallel()
	web := strings.TrimSpace(e.ok("run", "-d", "--name", "web", "-p", "18080:80", "busybox:vm",
		"sh", "-c", "mkdir -p /www && echo served-by-ferry > /www/index.html && exec httpd -f -p 80 -h /www"))
	other := strings.TrimSpace(e.ok("run", "-d", "--name", "other", "busybox:vm", "sleep", "1000"))
	var body string
	e.eventually("httpd answering on the published port", 3*time.Minute, func() bool {
		out, err := e.inNetns("wget", "-qO-", "-T", "2", "http://127.0.0.1:18080/")
		body = out
		return err == nil
	})
	if body != "served-by-ferry\n" {
		t.Fatalf("published port served %q", body)
	}
	a, b := e.inspect(web).IP(), e.inspect(other).IP()
	if a == "" || b == "" || a == b {
		t.Fatalf("addresses %q and %q: want two different ones", a, b)
	}
	e.eventually("other reaches web", 60*time.Second, func() bool {
		out, _ := e.run(nil, "exec", "other", "wget", "-qO-", "http://"+a+"/").stdout, 0
		return out == "served-by-ferry\n"
	})
	if ps := e.ok("ps"); !strings.Contains(ps, "0.0.0.0:18080->80/tcp") {
		t.Fatalf("ps does not show the published port:\n%s", ps)
	}
	e.ok("rm", "-f", web, other)
	if out, _ := e.inNetns("ip", "-o", "link", "show", "type", "tun"); strings.TrimSpace(out) != "" {
		t.Fatalf("TAPs left after rm: %s", out)
	}
	if out, _ := e.inNetns("nft", "list", "ruleset"); strings.Contains(out, "18080") {
		t.Fatalf("port rule left after rm:\n%s", out)
	}
	assertNoLeaks(t, e)
}

// TestRestartOnFailure: on-failure:2 restarts exactly twice.
func TestRestartOnFailure(t *testing.T) {
	e := vmEnv(t)
	t.Parallel()
	id := strings.TrimSpace(e.ok("run", "-d", "--restart", "on-failure:2", "busybox:vm", "sh", "-c", "echo run; exit 1"))
	e.eventually("two restarts and a final stop", 3*time.Minute, func() bool {
		m := e.inspect(id)
		return m.State == types.StateStopped && m.Restarts == 2
	})
	time.Sleep(2 * time.Second)
	m := e.inspect(id)
	starts := 0
	for _, ev := range m.Events {
		if ev.Type == "started" {
			starts++
		}
	}
	if m.State != types.StateStopped || starts != 3 || m.LastExit.ExitCode != 1 {
		t.Fatalf("state %s, %d boots (want 3), exit %+v", m.State, starts, m.LastExit)
	}
	e.ok("rm", id)
}

// TestCrashRecovery SIGKILLs the daemon with machines running, starting and
// being destroyed; after a restart ps is truthful, running machines answer
// exec, and nothing is leaked.
func TestCrashRecovery(t *testing.T) {
	e := vmEnv(t)
	t.Parallel()
	running := strings.TrimSpace(e.ok("run", "-d", "--name", "keep", "busybox:vm", "sleep", "1000"))
	doomed := strings.TrimSpace(e.ok("run", "-d", "--name", "doomed", "busybox:vm", "sleep", "1000"))
	e.eventually("keep answers exec", 3*time.Minute, func() bool { return e.run(nil, "exec", "keep", "true").code == 0 })

	// Kill the daemon while one machine is being created and one destroyed.
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); e.run(nil, "run", "-d", "--name", "starting", "busybox:vm", "sleep", "1000") }()
	go func() { defer wg.Done(); e.run(nil, "rm", "-f", "doomed") }()
	time.Sleep(150 * time.Millisecond)
	e.killDaemon()
	wg.Wait()
	e.startDaemon()

	if m := e.inspect(running); m.State != types.StateStarted {
		t.Fatalf("running machine after daemon restart: %s", m.State)
	}
	if out := e.ok("exec", "keep", "echo", "still here"); out != "still here\n" {
		t.Fatalf("exec after daemon restart: %q", out)
	}
	if r := e.run(nil, "inspect", doomed); r.code == 0 {
		if m := e.inspect(doomed); m.State != types.StateStarted {
			t.Fatalf("doomed machine is %s: a destroy must finish or not have begun", m.State)
		}
	}
	if r := e.run(nil, "inspect", "starting"); r.code == 0 {
		// A create the kill cut off before its start began stays created,
		// as Docker's would, and must start on request; one whose start had
		// begun is finished by the restarted daemon.
		if st := e.inspect("starting").State; st == types.StateCreated {
			e.ok("start", "starting")
		}
		e.eventually("the half-started machine started", 3*time.Minute, func() bool {
			return e.inspect("starting").State == types.StateStarted
		})
	}
	for _, id := range strings.Fields(e.ok("ps", "-a", "-q")) {
		e.ok("rm", "-f", id)
	}
	assertNoLeaks(t, e)
}

// TestConcurrentCreates: 20 machines of one image created at once all start.
func TestConcurrentCreates(t *testing.T) {
	e := vmEnv(t) // 20 tiny TCG guests: ~30 s on 2 cores
	var wg sync.WaitGroup
	errs := make(chan string, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.run(nil, "run", "-d", "--memory", "128m", "busybox:vm", "sleep", "1000")
			if r.code != 0 {
				errs <- r.String()
			}
			_ = i
		}()
	}
	wg.Wait()
	close(errs)
	for s := range errs {
		t.Error(s)
	}
	if n := len(strings.Fields(e.ok("ps", "-q"))); n != 20 {
		t.Fatalf("%d machines running, want 20\n%s", n, e.ok("ps", "-a"))
	}
	for _, id := range strings.Fields(e.ok("ps", "-a", "-q")) {
		e.ok("rm", "-f", id)
	}
	assertNoLeaks(t, e)
}

// TestRunFailuresLeaveNothing: bad input fails with one line and leaves no
// machine, disk, VMM or TAP behind.
func TestRunFailuresLeaveNothing(t *testing.T) {
	e := vmEnv(t)
	t.Parallel()
	// An image that cannot be found: docker's "Unable to find image" line,
	// then the error.
	if r := e.run(nil, "run", "--rm", "127.0.0.1:1/nosuch:1"); r.code == 0 || !strings.Contains(r.stderr, "Unable to find image") ||
		!strings.Contains(r.stderr, "ferry: ") || !strings.Contains(r.stderr, "nosuch") {
		t.Fatalf("missing image: %s", r)
	}
	e.fails([]string{"memory"}, "run", "--rm", "--memory", "-5", "busybox:vm", "true")
	e.fails([]string{"restart"}, "run", "--rm", "--restart", "sometimes", "busybox:vm", "true")
	if r := e.run(nil, "run", "--rm", "busybox:vm", "/no/such/binary"); r.code != 127 {
		t.Fatalf("missing entrypoint: %s", r)
	}
	held := strings.TrimSpace(e.ok("run", "-d", "-p", "18081:80", "busybox:vm", "sleep", "1000"))
	e.fails([]string{"18081"}, "run", "--rm", "-p", "18081:80", "busybox:vm", "true")
	if ids := strings.Fields(e.ok("ps", "-a", "-q")); len(ids) != 1 || ids[0] != held {
		t.Fatalf("a failed run left machines: %v", ids)
	}
	e.ok("rm", "-f", held)
	assertNoLeaks(t, e)
}

// TestScale brings an app to two machines of an image and back to none.
func TestScale(t *testing.T) {
	e := vmEnv(t)
	t.Parallel()
	e.ok("scale", "count", "2", "--app", "s", "busybox:vm")
	if ids := strings.Fields(e.ok("ps", "-a", "--app", "s", "-q")); len(ids) != 2 {
		t.Fatalf("after scale to 2: %v", ids)
	}
	if out := e.ok("scale", "count", "2", "--app", "s", "busybox:vm"); !strings.Contains(out, "already has 2") {
		t.Fatalf("idempotent scale said %q", out)
	}
	e.ok("scale", "count", "0", "--app", "s", "busybox:vm")
	if ids := strings.Fields(e.ok("ps", "-a", "--app", "s", "-q")); len(ids) != 0 {
		t.Fatalf("after scale to 0: %v", ids)
	}
	assertNoLeaks(t, e)
}

// assertNoLeaks checks that a daemon with no machines holds no machine
// directory, scratch disk or VMM process.
func assertNoLeaks(t *testing.T, e *vmFerry) {
	t.Helper()
	if out := e.ok("ps", "-a", "-q"); out != "" {
		return // machines remain on purpose
	}
	// A spare (--spares) is a VMM of no machine on purpose.
	var spares []string
	ents, _ := os.ReadDir(filepath.Join(e.root, "machines"))
	for _, d := range ents {
		dir := filepath.Join(e.root, "machines", d.Name())
		if _, err := os.Stat(filepath.Join(dir, machine.SpareName)); err == nil {
			spares = append(spares, dir)
			continue
		}
		t.Errorf("leaked machine directory %s", d.Name())
	}
	if out, _ := e.inNetns("ip", "-o", "link", "show", "type", "tun"); strings.TrimSpace(out) != "" {
		t.Errorf("leaked TAPs: %s", out)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), filepath.Join(e.root, "machines")) &&
			!slices.ContainsFunc(spares, func(d string) bool { return strings.Contains(string(b), d+"/") }) {
			t.Errorf("leaked VMM process %s: %q", p, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
}
