package cli

import (
	"strings"
	"testing"
	"time"
)

// TestWarmStarts runs the guest-semantics checks on both paths of one
// daemon started with --warm-starts: machines restored from a template
// (warm) and machines run with --cold. Both give the same results (exit
// code, env, user, workdir, hostname, network and DNS, a volume, exec,
// foreground attach), and two machines restored from one template do not
// share their random bytes, boot id or MAC.
func TestWarmStarts(t *testing.T) {
	e := vmEnv(t, "--warm-starts")
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
		if r := run("--rm", "busybox:vm", "sh", "-c", "exit 3"); r.code != 3 {
			t.Fatalf("%s: exit status: %s", p.name, r)
		}
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
	for _, n := range names {
		e.ok("rm", "-f", n)
	}
	e.ok("volume", "rm", "vol-warm", "vol-cold")
	assertNoLeaks(t, e)
}
