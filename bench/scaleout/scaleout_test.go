// Package scaleout benchmarks machines across hosts (docs/scale-out.md) on
// three hosts as network namespaces of this machine (cptest: each a
// `ferry daemon --join`, the control plane in a fourth namespace, one
// Postgres), with real VMs under QEMU, in one run:
//
//   - placement latency: `ferry -H tcp://CP run -d` (placed, then created
//     and started on its host) against `ferry run -d` on one host's own
//     socket, create to VMM started, alternating rounds;
//   - many machines (100 by default) placed through the control plane,
//     several at once: total time, the spread per host;
//   - host loss with those running: the host with most machines has its
//     daemon SIGKILLed and its link cut; time until its machines are placed
//     again, and until they are all started on the survivors.
//
// Opt-in:
//
//	FERRY_BENCH=1 [FERRY_BENCH_N=7] [FERRY_BENCH_MACHINES=100] go test -run ScaleOut -v -timeout 40m ./bench/scaleout/
//
// bench/README.md records results with the machine's load.
package scaleout

import (
	"context"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/controlplane"
	"github.com/ferryvm/ferry/internal/controlplane/cptest"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
	"github.com/ferryvm/ferry/internal/testutil/prereq/vmprereq"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func load() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// memAvailable is this machine's MemAvailable in MiB.
func memAvailable() int64 {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(v, " kB")), 10, 64)
			return kb / 1024
		}
	}
	return 0
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func TestScaleOut(t *testing.T) {
	prereq.OptIn(t, "FERRY_BENCH", "the scale-out benchmark")
	vmprereq.Require(t)
	rounds, many := envInt("FERRY_BENCH_N", 7), envInt("FERRY_BENCH_MACHINES", 100)
	// CPUs for every machine (1 each) on any one host, as the hosts are
	// all this machine: the bench measures placement and boots, not the
	// overcommit (whose default, 16, fits 32 per host on 2 CPUs).
	c := cptest.New(t, cptest.Options{Hosts: 3, CPUOvercommit: many/max(runtime.NumCPU(), 1) + 1})
	ctx := context.Background()
	st, err := controlplane.Open(ctx, c.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	for _, h := range c.Hosts {
		h.Start()
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		hs, err := st.Hosts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, h := range hs {
			if h.Live {
				n++
			}
		}
		if n == len(c.Hosts) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hosts did not join: %+v", hs)
		}
	}
	runArgs := []string{"run", "-d", "--restart", "always", "--memory", "64m", cptest.Image, "sleep", "1000000"}
	direct := c.Hosts[0]

	// Placement latency, alternating: through the control plane, then on
	// one host directly; each machine removed by the way it came.
	var viaCP, onHost []time.Duration
	for i := range rounds {
		for _, cp := range []bool{i%2 == 0, i%2 != 0} {
			start := time.Now()
			var out, errs string
			var err error
			if cp {
				out, errs, err = c.Ferry(runArgs...)
			} else {
				out, errs, err = direct.Ferry(runArgs...)
			}
			took := time.Since(start)
			if err != nil {
				t.Fatalf("run -d (control plane %v): %v\n%s%s", cp, err, out, errs)
			}
			id := strings.TrimSpace(out)
			if cp {
				viaCP = append(viaCP, took)
				_, _, err = c.Ferry("rm", "-f", id)
			} else {
				onHost = append(onHost, took)
				_, _, err = direct.Ferry("rm", "-f", id)
			}
			if err != nil {
				t.Fatalf("rm %s: %v", id, err)
			}
		}
	}
	t.Logf("placement latency, run -d to VMM started, %d rounds (load %s): control plane median %s (best %s), one host median %s (best %s): %.2fx",
		rounds, load(), median(viaCP).Round(time.Millisecond), slices.Min(viaCP).Round(time.Millisecond),
		median(onHost).Round(time.Millisecond), slices.Min(onHost).Round(time.Millisecond),
		float64(median(viaCP))/float64(median(onHost)))

	// Many machines through the control plane, 8 at once.
	t.Logf("placing %d machines (load %s, %d MiB available)", many, load(), memAvailable())
	start := time.Now()
	var mu sync.Mutex
	var failed []string
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range many {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out, errs, err := c.Ferry(append([]string{"run", "-d", "--name", "m" + strconv.Itoa(i)}, runArgs[1:]...)...)
			if err != nil {
				mu.Lock()
				failed = append(failed, strings.TrimSpace(errs+out))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	placedIn := time.Since(start)
	perHost := func() map[string]int {
		ms, err := st.AppMachines(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		hs, err := st.Hosts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]string{}
		for _, h := range hs {
			names[h.ID] = h.Name
		}
		out := map[string]int{}
		for _, m := range ms {
			out[names[m.HostID]]++
		}
		return out
	}
	spread := perHost()
	vmms := 0
	for _, h := range c.Hosts {
		vmms += len(h.VMMs())
	}
	t.Logf("%d machines: %d started in %s (%d failed), spread %v, %d VMMs running (load %s, %d MiB available)",
		many, many-len(failed), placedIn.Round(100*time.Millisecond), len(failed), spread, vmms, load(), memAvailable())
	if len(failed) > 0 {
		t.Logf("first failure: %s", failed[0])
	}

	// Host loss under that load: the host with most machines.
	victim := c.Hosts[0]
	for _, h := range c.Hosts {
		if spread[h.Name] > spread[victim.Name] {
			victim = h
		}
	}
	orphans := spread[victim.Name]
	lost := time.Now()
	victim.Daemon.Kill()
	victim.Link(false)
	var placedAgain time.Duration
	for deadline := time.Now().Add(10 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if placedAgain == 0 && perHost()[victim.Name] == 0 {
			placedAgain = time.Since(lost)
		}
		running := 0
		for _, h := range c.Hosts {
			if h == victim {
				continue
			}
			ms, err := h.API.ListMachines(ctx, "", false)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms {
				if m.State == types.StateStarted {
					running++
				}
			}
		}
		if placedAgain > 0 && running >= many-len(failed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 minutes %d of %d machines run on the survivors\n%s", running, many-len(failed), c.CPLog())
		}
	}
	t.Logf("host loss of %s with %d of its machines: placed again after %s, all running on the survivors after %s, spread %v (load %s, %d MiB available)",
		victim.Name, orphans, placedAgain.Round(100*time.Millisecond), time.Since(lost).Round(100*time.Millisecond), perHost(), load(), memAvailable())
}
