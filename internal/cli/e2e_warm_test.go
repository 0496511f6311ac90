package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/machine"
)

// TestWarmStarts runs the guest-semantics checks on both paths of one
// daemon started with --warm-starts: machines restored from a template
// (warm) and machines run with --cold. Both give the same results (exit
// code, OOM, env, user, workdir, hostname, network and DNS, a volume,
// exec, foreground attach), and two machines restored from one template do not
// share their random bytes, boot id or MAC.
func TestWarmStarts(t *testing.T) {
	// With spares, as `ferry daemon` runs by default: most warm machines
	// here take the spare the one before left (TestWarmSpares checks that).
	e := vmEnv(t, "--warm-starts", "--spares")
	t.Parallel()
	paths := []struct {
		name  string
		flags []string
		warm  bool
	}{{"warm", nil, true}, {"cold", []string{"--cold"}, false}}
	for _, p := range paths {
		run := func(args ...string) result {
			return e.run(nil, append(append([]string{"run"}, p.flags...), args...)...)
		}
		if r := run("--rm", "busybox:vm", "echo", "hi"); r.code != 0 || r.stdout != "hi\n" {
			t.Fatalf("%s: run echo hi: %s\ndaemon:\n%s", p.name, r, e.daemonLog)
		}
		if p.warm {
			// Its template was saved once the kernel had its TSC: a
			// restored guest does not calibrate again on a jiffies clock.
			// And its base disk, which fits its template's 64 GiB
			// placeholder, was not re-probed (the host sent the real
			// sizes): the kernel still has the placeholder's size.
			r := run("--rm", "busybox:vm", "cat", "/sys/devices/system/clocksource/clocksource0/current_clocksource", "/sys/block/vda/size")
			f := strings.Fields(r.stdout)
			if r.code != 0 || len(f) != 2 || f[0] == "tsc-early" || strings.Contains(f[0], "jiffies") {
				t.Errorf("warm: a restored guest's clocksource and base size: %s", r)
			} else if f[1] != "134217728" {
				t.Errorf("warm: the base disk was re-probed (%s sectors, not the placeholder's 134217728)", f[1])
			}
		}
		if r := run("--rm", "busybox:vm", "sh", "-c", "exit 3"); r.code != 3 {
			t.Fatalf("%s: exit status: %s", p.name, r)
		}
		// An entrypoint that outgrows the machine's memory is OOM-killed
		// and reported so, on both paths.
		oom := "oom-" + p.name
		if r := run("--name", oom, "busybox:vm", "awk", `BEGIN { s = "x"; while (1) s = s s }`); r.code != 137 {
			t.Errorf("%s: OOM: %s", p.name, r)
		}
		if m := e.inspect(oom); m.LastExit == nil || !m.LastExit.OOMKilled || m.Warm != p.warm {
			t.Errorf("%s: OOM: last exit %+v, warm %v", p.name, m.LastExit, m.Warm)
		}
		e.ok("rm", oom)
		r := run("--rm", "-e", "FOO=bar", "--user", "ferry", "-w", "/tmp", "--hostname", "vmhost",
			"busybox:vm", "sh", "-c", `echo "$FOO $(id -u) $(pwd) $(hostname)"`)
		if r.code != 0 || r.stdout != "bar 1000 /tmp vmhost\n" {
			t.Fatalf("%s: flags: %s", p.name, r)
		}
		if r := run("-d", "--name", "m-"+p.name, "-v", "vol-"+p.name+":/data", "busybox:vm", "sleep", "1000"); r.code != 0 {
			t.Fatalf("%s: run -d: %s", p.name, r)
		}
	}
	// A second warm machine, to compare with the first.
	e.ok("run", "-d", "--name", "m-warm2", "busybox:vm", "sleep", "1000")
	names := []string{"m-warm", "m-cold", "m-warm2"}
	for _, n := range names {
		e.eventually(n+" answers exec", 3*time.Minute, func() bool { return e.run(nil, "exec", n, "true").code == 0 })
		if m := e.inspect(n); m.Warm != (n != "m-cold") {
			t.Errorf("%s: warm = %v\nevents: %+v\ndaemon:\n%s", n, m.Warm, m.Events, e.daemonLog)
		}
	}
	for _, p := range paths {
		n := "m-" + p.name
		if out := e.ok("exec", "-e", "FOO=bar", "-u", "ferry", "-w", "/tmp", n, "sh", "-c", `echo "$FOO $(id -u) $(pwd)"`); out != "bar 1000 /tmp\n" {
			t.Errorf("%s: exec: %q", p.name, out)
		}
		if out := e.ok("exec", n, "sh", "-c", "echo kept > /data/f && grep -c ' /data ' /proc/mounts && cat /data/f"); out != "1\nkept\n" {
			t.Errorf("%s: volume: %q", p.name, out)
		}
		other := "m-cold"
		if p.warm == false {
			other = "m-warm"
		}
		// By name (the network's DNS) and over the machine's own NIC (its
		// MAC is the one the network expects).
		e.eventually(n+" reaches "+other+" by name", 60*time.Second, func() bool {
			return e.run(nil, "exec", n, "ping", "-c", "1", "-W", "5", other).code == 0
		})
	}
	type seen struct{ bootID, rnd, mac string }
	var got []seen
	for _, n := range []string{"m-warm", "m-warm2"} {
		out := e.ok("exec", n, "sh", "-c", "cat /proc/sys/kernel/random/boot_id; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; cat /sys/class/net/eth0/address")
		f := strings.Fields(out)
		if len(f) != 3 {
			t.Fatalf("%s: probe printed %q", n, out)
		}
		got = append(got, seen{f[0], f[1], f[2]})
		if want := e.inspect(n); want.Network == nil || len(want.Network.Endpoints) == 0 || !strings.EqualFold(want.Network.Endpoints[0].MAC, f[2]) {
			t.Errorf("%s: eth0 has MAC %s, the machine's is %+v", n, f[2], want.Network)
		}
	}
	if got[0].bootID == got[1].bootID || got[0].rnd == got[1].rnd || got[0].mac == got[1].mac {
		t.Errorf("two machines restored from one template share state: %+v", got)
	}
	if n := strings.Count(e.daemonLog.String(), `msg="claimed spare"`); n == 0 {
		t.Errorf("no warm machine took a spare: the checks above ran on restores only\n%s", e.daemonLog)
	} else {
		t.Logf("%d of the warm machines took a spare", n)
	}
	for _, n := range names {
		e.ok("rm", "-f", n)
	}
	e.ok("volume", "rm", "vol-warm", "vol-cold")
	assertNoLeaks(t, e)
}

// TestWarmTemplateRecovery: a template whose state or memory file is
// corrupted or truncated on disk is detected and rebuilt (the machine is still restored, never from the
// broken state), and a daemon killed -9 in the middle of a restore is
// recovered as a mid-boot kill: the cut-off restore ends and the machine
// starts again and runs.
func TestWarmTemplateRecovery(t *testing.T) {
	e := vmEnv(t, "--warm-starts")
	t.Parallel()
	if r := e.run(nil, "run", "--rm", "busybox:vm", "true"); r.code != 0 {
		t.Fatalf("first warm run: %s\n%s", r, e.daemonLog)
	}
	states, _ := filepath.Glob(filepath.Join(e.root, "templates", "*", "state"))
	if len(states) != 1 {
		t.Fatalf("templates after one run: %v", states)
	}
	state := states[0]
	memory := filepath.Join(filepath.Dir(state), "memory")
	damage := map[string]func(){
		"memory truncated": func() {
			if err := os.Truncate(memory, 1<<20); err != nil {
				t.Fatal(err)
			}
		},
		"memory corrupt": func() {
			f, err := os.OpenFile(memory, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			// Anywhere: a byte in a hole is a page the template never had.
			if _, err := f.WriteAt([]byte("not the template's RAM"), 100<<20); err != nil {
				t.Fatal(err)
			}
			f.Close()
		},
		"truncated": func() {
			if err := os.Truncate(state, 4096); err != nil {
				t.Fatal(err)
			}
		},
		"corrupt": func() {
			f, err := os.OpenFile(state, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte("not a migration stream"), 1<<20); err != nil {
				t.Fatal(err)
			}
			f.Close()
		},
	}
	for i, what := range []string{"truncated", "corrupt", "memory truncated", "memory corrupt"} {
		damage[what]()
		name := "after-" + strings.ReplaceAll(what, " ", "-")
		if r := e.run(nil, "run", "-d", "--name", name, "busybox:vm", "sleep", "1000"); r.code != 0 {
			t.Fatalf("%s template: run: %s\n%s", what, r, e.daemonLog)
		}
		if m := e.inspect(name); !m.Warm {
			t.Errorf("%s template: the machine was not restored from a rebuilt template: %+v", what, m.Events)
		}
		e.eventually(name+" answers exec", 3*time.Minute, func() bool {
			r := e.run(nil, "exec", name, "echo", "ok")
			return r.code == 0 && r.stdout == "ok\n"
		})
		e.ok("rm", "-f", name)
		if strings.Count(e.daemonLog.String(), "template unusable; rebuilding") <= i {
			t.Errorf("%s template: the daemon did not say it rebuilt it:\n%s", what, e.daemonLog)
		}
	}

	// kill -9 while a machine is being restored.
	done := make(chan result, 1)
	go func() { done <- e.run(nil, "run", "-d", "--name", "cut", "busybox:vm", "sleep", "1000") }()
	// Wait until the restoring VMM runs and has not taken its run config
	// yet (the machine's restoring mark is still there).
	deadline := time.Now().Add(2 * time.Minute)
	for !restoringVMM(e.root) {
		if time.Now().After(deadline) {
			t.Fatalf("no restore seen in progress\n%s", e.daemonLog)
		}
		time.Sleep(time.Millisecond)
	}
	e.killDaemon()
	<-done
	e.startDaemon()
	e.eventually("the cut-off machine started and answering", 3*time.Minute, func() bool {
		r := e.run(nil, "exec", "cut", "echo", "up")
		return r.code == 0 && r.stdout == "up\n"
	})
	if m := e.inspect("cut"); m.State != types.StateStarted {
		t.Fatalf("cut-off machine is %s", m.State)
	}
	if !strings.Contains(e.daemonLog.String(), "ending a restore a daemon restart interrupted") {
		t.Errorf("the restarted daemon did not end the interrupted restore:\n%s", e.daemonLog)
	}
	e.ok("rm", "-f", "cut")
	assertNoLeaks(t, e)
}

// restoringVMM reports whether a machine under root has its restoring mark
// and a running VMM.
func restoringVMM(root string) bool {
	marks, _ := filepath.Glob(filepath.Join(root, "machines", "*", "restoring"))
	if len(marks) == 0 {
		return false
	}
	dir := filepath.Dir(marks[0])
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), dir+"/") && strings.Contains(string(b), "-incoming") {
			_, err := os.Stat(marks[0])
			return err == nil
		}
	}
	return false
}

// TestWarmStartsBeyondRun: with --warm-starts, policy restarts, `ferry
// restart`, compose services, `ferry scale count` and the builder's RUN
// VMs are restored from templates too, and work as they do booted.
func TestWarmStartsBeyondRun(t *testing.T) {
	e := vmEnv(t, "--warm-starts")
	t.Parallel()
	inspectApp := func(app, ref string) *types.Machine {
		t.Helper()
		var ms []*types.Machine
		if err := json.Unmarshal([]byte(e.ok("inspect", "--app", app, ref)), &ms); err != nil || len(ms) != 1 {
			t.Fatalf("inspect %s/%s: %v", app, ref, err)
		}
		return ms[0]
	}
	// A policy restart.
	e.ok("run", "-d", "--name", "pol", "--restart", "on-failure:1", "busybox:vm", "sh", "-c", "sleep 1; exit 1")
	e.eventually("pol restarted once and stopped", 3*time.Minute, func() bool {
		m := e.inspect("pol")
		return m.Restarts == 1 && m.State == types.StateStopped
	})
	if m := e.inspect("pol"); !m.Warm || m.LastExit == nil || m.LastExit.ExitCode != 1 {
		t.Errorf("policy restart: warm %v, exit %+v", m.Warm, m.LastExit)
	}
	// ferry restart.
	e.ok("run", "-d", "--name", "rs", "busybox:vm", "sleep", "1000")
	e.eventually("rs answers exec", 3*time.Minute, func() bool { return e.run(nil, "exec", "rs", "true").code == 0 })
	before := e.ok("exec", "rs", "cat", "/proc/sys/kernel/random/boot_id")
	e.ok("restart", "rs")
	e.eventually("rs answers exec after its restart", 3*time.Minute, func() bool { return e.run(nil, "exec", "rs", "true").code == 0 })
	if after := e.ok("exec", "rs", "cat", "/proc/sys/kernel/random/boot_id"); after == before {
		t.Errorf("ferry restart kept the boot id %s", before)
	}
	if m := e.inspect("rs"); !m.Warm {
		t.Errorf("ferry restart booted cold: %+v", m.Events)
	}
	// A compose service.
	dir := t.TempDir()
	file := filepath.Join(dir, "compose.yaml")
	writeFiles(t, dir, map[string]string{"compose.yaml": "name: warmapp\nservices:\n  svc:\n    image: busybox:vm\n    command: [sleep, \"1000\"]\n"})
	t.Cleanup(func() { e.run(nil, "compose", "-f", file, "down", "-v") })
	e.ok("compose", "-f", file, "up", "-d")
	if m := inspectApp("warmapp", "warmapp-svc-1"); !m.Warm {
		t.Errorf("compose service booted cold: %+v", m.Events)
	}
	e.ok("compose", "-f", file, "down", "-v")
	// ferry scale count (machines of the image's own command, sh, which
	// exits at once: restarted, always, each start restored).
	e.ok("scale", "count", "2", "--app", "warmscale", "busybox:vm")
	scaled := strings.Fields(e.ok("ps", "-a", "-q", "--app", "warmscale"))
	if len(scaled) != 2 {
		t.Fatalf("scale count 2: machines %v", scaled)
	}
	for _, id := range scaled {
		e.eventually(id+" started", 3*time.Minute, func() bool { return inspectApp("warmscale", id).LastExit != nil })
		if m := inspectApp("warmscale", id); !m.Warm {
			t.Errorf("scaled machine %s booted cold: %+v", id, m.Events)
		}
	}
	e.ok("scale", "count", "0", "--app", "warmscale", "busybox:vm")
	// A build's RUN VM (2 vCPUs, 1 GiB: a template of its own).
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": "FROM busybox:vm\nRUN echo built-warm > /built\n"})
	if r := e.run(nil, "build", "-t", "warmbuilt:1", ctxDir); r.code != 0 {
		t.Fatalf("build: %s\n%s", r, e.daemonLog)
	}
	if out := e.ok("run", "--rm", "warmbuilt:1", "cat", "/built"); out != "built-warm\n" {
		t.Errorf("built image: %q", out)
	}
	manifests, _ := filepath.Glob(filepath.Join(e.root, "templates", "*", "manifest.json"))
	builder := false
	for _, p := range manifests {
		b, _ := os.ReadFile(p)
		builder = builder || strings.Contains(string(b), `"memory_mib": 1024`)
	}
	if !builder {
		t.Errorf("no template of the builder VM's shape: its RUN VM was not restored (%v)", manifests)
	}
	if log := e.daemonLog.String(); strings.Contains(log, "booting cold") {
		t.Errorf("a start fell back to a cold boot:\n%s", log)
	}
	for _, n := range []string{"pol", "rs"} {
		e.ok("rm", "-f", n)
	}
	assertNoLeaks(t, e)
}

// TestWarmPrewarm: a daemon started with --prewarm builds the default
// machine's template before any machine asks for it, and the first
// machine restores from that one (no second build).
func TestWarmPrewarm(t *testing.T) {
	e := vmEnv(t, "--prewarm")
	t.Parallel()
	e.eventually("the default template is built at start", 3*time.Minute, func() bool {
		m, _ := filepath.Glob(filepath.Join(e.root, "templates", "*", "manifest.json"))
		return len(m) == 1
	})
	e.ok("run", "--name", "first", "busybox:vm", "true")
	if m := e.inspect("first"); !m.Warm {
		t.Errorf("the first machine booted cold: %+v\n%s", m.Events, e.daemonLog)
	}
	if n := strings.Count(e.daemonLog.String(), "warm-start template built"); n != 1 {
		t.Errorf("%d template builds, want 1 (the one at start):\n%s", n, e.daemonLog)
	}
	e.ok("rm", "first")
	assertNoLeaks(t, e)
}

// spareDirs are the directories of the spares e's daemon keeps.
func spareDirs(root string) []string {
	m, _ := filepath.Glob(filepath.Join(root, "machines", "*", machine.SpareName))
	for i := range m {
		m[i] = filepath.Dir(m[i])
	}
	return m
}

// nextSpare waits for e's daemon to have a spare other than prev ready
// and returns its directory.
func nextSpare(e *vmFerry, prev string) string {
	var next string
	e.eventually("a new spare is ready", 3*time.Minute, func() bool {
		for _, d := range spareDirs(e.root) {
			if d != prev && strings.Contains(e.daemonLog.String(), `msg="spare ready" svc=machine spare=`+filepath.Base(d)) {
				next = d
			}
		}
		return next != ""
	})
	return next
}

// vmmRuns reports whether a process runs for the machine directory dir.
func vmmRuns(dir string) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, _ := os.ReadFile(p); strings.Contains(string(b), dir+"/") {
			return true
		}
	}
	return false
}

// vmmStarted is when process pid started, from /proc (boot time plus its
// start in clock ticks; Linux's USER_HZ is 100).
func vmmStarted(t *testing.T, pid int) time.Time {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ticks, _ := strconv.ParseInt(f[19], 10, 64) // field 22, starttime
	st, _ := os.ReadFile("/proc/stat")
	var btime int64
	for _, l := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(l, "btime "); ok {
			btime, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return time.Unix(btime, 0).Add(time.Duration(ticks) * 10 * time.Millisecond)
}

// TestWarmSpares: with --spares the daemon keeps a restored machine ready
// (here the default shape's, --prewarm); the next machine takes it — its
// VMM ran before the machine was asked for — and is a whole machine of its
// own: its disks (the writable one at its real size), its network, its exit
// status; it survives a daemon restart. Another spare follows it; a
// machine created to start later keeps its spare until it starts or is
// removed; a spare left by a killed daemon is reaped by the next one.
func TestWarmSpares(t *testing.T) {
	e := vmEnv(t, "--prewarm", "--spares")
	t.Parallel()
	spare := nextSpare(e, "")
	asked := time.Now()
	e.ok("run", "-d", "--name", "s1", "busybox:vm", "sleep", "1000")
	m := e.inspect("s1")
	if m.ID != filepath.Base(spare) || !m.Warm {
		t.Fatalf("s1 (%s, warm %v) did not take the spare %s\n%s", m.ID, m.Warm, spare, e.daemonLog)
	}
	if started := vmmStarted(t, m.PID); !started.Before(asked) {
		t.Errorf("s1's VMM started at %v, after the machine was asked for at %v: not a spare", started, asked)
	}
	if !strings.Contains(e.daemonLog.String(), `msg="claimed spare" svc=machine machine=`+m.ID) {
		t.Errorf("the daemon did not say it claimed the spare:\n%s", e.daemonLog)
	}
	e.eventually("s1 answers exec", time.Minute, func() bool { return e.run(nil, "exec", "s1", "true").code == 0 })
	scratch, err := os.Stat(filepath.Join(e.root, "machines", m.ID, "scratch.ext4"))
	if err != nil {
		t.Fatal(err)
	}
	out := e.ok("exec", "s1", "sh", "-c", "cat /sys/block/vdb/size; test ! -e /f && test -x /bin/busybox && echo kept > /f; sync; cat /f; ip -o -4 addr show eth0")
	// The spare rehearsed a start (its guest ran a start's paths with a
	// machine of TEST-NET addresses, a "rehearsal" hostname and /etc files
	// on its placeholder disks before the claim) and left nothing of it:
	// no address, route, mount, cgroup, file or name.
	if !strings.Contains(e.daemonLog.String(), `msg="spare rehearsed a start"`) {
		t.Errorf("the spare did not rehearse a start:\n%s", e.daemonLog)
	}
	left := e.ok("exec", "s1", "sh", "-c", "ip -o addr; ip route; ip -6 route; cat /proc/mounts /etc/hosts /etc/resolv.conf /etc/passwd; hostname; ls /sys/fs/cgroup")
	for _, trace := range []string{"127.77.", "192.0.2.", "2001:db8:", "rehears"} {
		if strings.Contains(left, trace) {
			t.Errorf("the rehearsal left %q in s1:\n%s", trace, left)
		}
	}
	if f := strings.Fields(out); len(f) < 2 || f[0] != strconv.FormatInt(scratch.Size()/512, 10) || f[1] != "kept" {
		t.Errorf("s1's disks: %q (scratch is %d bytes)", out, scratch.Size())
	}
	if m.Network == nil || len(m.Network.Endpoints) == 0 || !strings.Contains(out, " "+m.Network.Endpoints[0].IPv4.String()+" ") {
		t.Errorf("s1's eth0: %q, its endpoint %+v", out, m.Network)
	} else {
		gw := m.Network.Endpoints[0].Gateway.String()
		e.eventually("s1 reaches its gateway "+gw, time.Minute, func() bool {
			return e.run(nil, "exec", "s1", "ping", "-c", "1", "-W", "5", gw).code == 0
		})
	}
	// The next spare, then a machine that takes it and exits 3.
	spare = nextSpare(e, spare)
	if r := e.run(nil, "run", "--name", "s2", "busybox:vm", "sh", "-c", "exit 3"); r.code != 3 {
		t.Errorf("s2: %s", r)
	}
	if m := e.inspect("s2"); m.ID != filepath.Base(spare) || m.LastExit == nil || m.LastExit.ExitCode != 3 {
		t.Errorf("s2 (%s) did not take the spare %s or exit 3: %+v", m.ID, spare, m.LastExit)
	}
	e.ok("rm", "s2")
	// Created to start later (docker create, then start): the spare is
	// the machine's until it starts; destroyed unstarted, it ends.
	spare = nextSpare(e, spare)
	e.ok("create", "--name", "c1", "busybox:vm", "true")
	if m := e.inspect("c1"); m.ID != filepath.Base(spare) {
		t.Errorf("c1 (%s) did not take the spare %s", m.ID, spare)
	}
	e.ok("rm", "c1")
	e.eventually("c1's spare is ended", time.Minute, func() bool { return !vmmRuns(spare) })
	// A killed daemon's spares are reaped by the next daemon — one kept
	// ready, and one a machine created to start later holds — and the
	// machine that was a spare is adopted.
	held := nextSpare(e, spare)
	e.ok("create", "--name", "c2", "busybox:vm", "true")
	spare = nextSpare(e, held)
	e.killDaemon()
	e.startDaemon()
	e.eventually("the killed daemon's spares are gone", time.Minute, func() bool {
		_, err := os.Stat(spare)
		return !vmmRuns(spare) && !vmmRuns(held) && os.IsNotExist(err)
	})
	if _, err := os.Stat(filepath.Join(held, machine.SpareName)); err == nil {
		t.Errorf("c2's directory still marks a spare")
	}
	e.ok("start", "c2")
	e.eventually("c2 ran after the daemon restart", 2*time.Minute, func() bool {
		m := e.inspect("c2")
		return m.State == types.StateStopped && m.LastExit != nil && m.LastExit.ExitCode == 0
	})
	e.ok("rm", "c2")
	if out := e.ok("exec", "s1", "cat", "/f"); out != "kept\n" {
		t.Errorf("s1 after the daemon restart: %q", out)
	}
	e.ok("rm", "-f", "s1")
	assertNoLeaks(t, e)
}
