// Package warm benchmarks warm starts (docs/warm-starts.md) through a whole
// daemon (warm starts are its default) in the test process: every measure
// alternates machines restored from a template with machines of the same
// image and shape booted cold (Guest.Cold) on the same daemon. Opt-in:
//
//	FERRY_BENCH=1 [FERRY_BENCH_N=7] [FERRY_BENCH_CONCURRENT=20] [FERRY_BENCH_LOG=FILE] [FERRY_BENCH_KERNEL=fallback] go test -run Warm -v -timeout 30m ./bench/warm/
//
// FERRY_BENCH_KERNEL=fallback boots Debian's fallback kernel instead of
// the minimal one; FERRY_BENCH_SPARES=0 runs the daemon without spares
// (every warm start restores its template itself). bench/README.md records results with the machine's load.
package warm

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/daemon"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/kernel"
	"github.com/ferryvm/ferry/internal/testimage"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
	"github.com/ferryvm/ferry/internal/testutil/prereq/vmprereq"
)

const img = "busybox:bench"

// syncBuf is the daemon's log, read for the template build time.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
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

// startDaemon runs a daemon (warm starts on) on a fresh root, its network in
// a namespace of its own, with the busybox test image loaded.
func startDaemon(t *testing.T) (*api.Client, *syncBuf) {
	t.Helper()
	dir, err := os.MkdirTemp("", "ferry-bench-warm-")
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("FERRY_QEMU_ACCEL") == "" {
		t.Setenv("FERRY_QEMU_ACCEL", "tcg")
	}
	ns := filepath.Base(dir)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	_ = exec.Command("ip", "-n", ns, "link", "set", "lo", "up").Run()
	logs := &syncBuf{}
	sock := filepath.Join(dir, "ferry.sock")
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Config{Root: filepath.Join(dir, "root"), Socket: sock, NetNS: ns,
			MirrorAddr: "", Spares: os.Getenv("FERRY_BENCH_SPARES") != "0", Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("daemon: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("daemon not ready after 30s")
	}
	c, err := api.NewClient("unix://"+sock, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if list, err := c.ListMachines(context.Background(), "", true); err == nil {
			for _, m := range list {
				_ = c.DestroyMachine(context.Background(), m.App, m.ID, true)
			}
		}
		cancel()
		<-done
		_ = exec.Command("ip", "netns", "del", ns).Run()
		os.RemoveAll(dir)
	})
	im, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(img)
	var buf bytes.Buffer
	if err := tarball.Write(tag, im, &buf); err != nil {
		t.Fatal(err)
	}
	if _, err := c.LoadImages(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	return c, logs
}

func config(cold bool, cmd ...string) types.Config {
	return types.Config{Image: img, Init: types.Init{Cmd: cmd}, Guest: types.Guest{Cold: cold}}
}

// settle waits between measured starts until the daemon is idle again:
// after a warm start it restores the next spare and has it rehearse a
// start (1 s later, under a second of CPU), which no measured start, warm
// or cold, may share the CPUs with.
func settle() { time.Sleep(2500 * time.Millisecond) }

// runTrue is `ferry run --rm IMG true`: create and start, wait for the
// exit, destroy.
func runTrue(t *testing.T, c *api.Client, cold bool) time.Duration {
	ctx := context.Background()
	start := time.Now()
	m, err := c.CreateMachine(ctx, "bench", types.CreateRequest{Config: config(cold, "true")})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.WaitMachine(ctx, "bench", m.ID, types.StateStopped, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	if st.LastExit == nil || st.LastExit.ExitCode != 0 || st.Warm == cold {
		t.Fatalf("run true (cold %v): warm %v, exit %+v", cold, st.Warm, st.LastExit)
	}
	if err := c.DestroyMachine(ctx, "bench", m.ID, true); err != nil {
		t.Fatal(err)
	}
	return d
}

// firstOutput notes when want first appears in what is written.
type firstOutput struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	at   time.Time
}

func (f *firstOutput) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buf.Write(p)
	if f.at.IsZero() && strings.Contains(f.buf.String(), f.want) {
		f.at = time.Now()
	}
	return len(p), nil
}

// toEntrypoint is create → the entrypoint's first output (`echo hi` on
// the machine's log).
func toEntrypoint(t *testing.T, c *api.Client, cold bool) time.Duration {
	ctx := context.Background()
	start := time.Now()
	m, err := c.CreateMachine(ctx, "bench", types.CreateRequest{Config: config(cold, "echo", "hi")})
	if err != nil {
		t.Fatal(err)
	}
	out := &firstOutput{want: "hi\n"}
	if err := c.MachineLogs(ctx, "bench", m.ID, api.LogsOptions{Follow: true}, out); err != nil {
		t.Fatal(err)
	}
	if out.at.IsZero() {
		t.Fatalf("no output: %q", out.buf.String())
	}
	if err := c.DestroyMachine(ctx, "bench", m.ID, true); err != nil {
		t.Fatal(err)
	}
	return out.at.Sub(start)
}

// mem is a VMM's memory in KiB: resident, proportional (shared pages
// divided between the processes mapping them), and of it the shared
// memory it maps (a restored VMM's template RAM).
type mem struct{ rss, pss, shmem int64 }

// concurrent creates n idle machines at once and returns the time until
// all answer exec and their VMMs' mean memory once idle; it destroys them.
func concurrent(t *testing.T, c *api.Client, n int, cold bool) (time.Duration, mem) {
	ctx := context.Background()
	start := time.Now()
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := c.CreateMachine(ctx, "bench", types.CreateRequest{Config: config(cold, "sleep", "1000")})
			if err != nil {
				errs <- err
				return
			}
			ids[i] = m.ID
			for {
				code, err := c.ExecMachine(ctx, "bench", m.ID, types.ExecRequest{Cmd: []string{"true"}}, guest.ExecIO{Stdout: io.Discard, Stderr: io.Discard})
				if err == nil && code == 0 {
					return
				}
				if time.Since(start) > 10*time.Minute {
					errs <- err
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second) // idle
	var sum mem
	for _, id := range ids {
		m, err := c.GetMachine(ctx, "bench", id)
		if err != nil {
			t.Fatal(err)
		}
		if m.Warm == cold {
			t.Fatalf("machine %s: warm %v, cold asked %v", id, m.Warm, cold)
		}
		sum.rss += procKB(t, m.PID, "status", "VmRSS")
		sum.shmem += procKB(t, m.PID, "status", "RssShmem")
		sum.pss += procKB(t, m.PID, "smaps_rollup", "Pss")
	}
	for _, id := range ids {
		if err := c.DestroyMachine(ctx, "bench", id, true); err != nil {
			t.Fatal(err)
		}
	}
	k := int64(n)
	return d, mem{sum.rss / k, sum.pss / k, sum.shmem / k}
}

// procKB is the kB value of field in /proc/pid/file.
func procKB(t *testing.T, pid int, file, field string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/" + file)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + field + `:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no %s in /proc/%d/%s", field, pid, file)
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n
}

// logPhases logs the medians of the warm path's phases in logs (the
// machine manager's debug line per restore): QEMU launched with its state
// loading, loaded and resumed, control channel answering, run config taken.
func logPhases(t *testing.T, what, logs string) {
	phases := map[string][]time.Duration{}
	var claims []time.Duration
	for _, m := range regexp.MustCompile(`msg="claimed spare" .*claim=(\S+) config=(\S+)`).FindAllStringSubmatch(logs, -1) {
		a, _ := time.ParseDuration(m[1])
		b, _ := time.ParseDuration(m[2])
		claims = append(claims, a+b)
	}
	if len(claims) > 0 {
		t.Logf("spares claimed, %s: %d, median claim+config %v", what, len(claims), median(claims).Round(time.Millisecond))
	}
	for _, m := range regexp.MustCompile(`msg=restored .*launch=(\S+) resume=(\S+) connect=(\S+) config=(\S+) total=(\S+)`).FindAllStringSubmatch(logs, -1) {
		for i, name := range []string{"launch", "resume", "connect", "config", "total"} {
			if d, err := time.ParseDuration(m[i+1]); err == nil {
				phases[name] = append(phases[name], d)
			}
		}
	}
	if len(phases["total"]) == 0 {
		return
	}
	t.Logf("restore phases, %s, medians of %d: launch %v, load+resume %v, connect %v, config %v, total %v", what, len(phases["total"]),
		median(phases["launch"]).Round(time.Millisecond), median(phases["resume"]).Round(time.Millisecond),
		median(phases["connect"]).Round(time.Millisecond), median(phases["config"]).Round(time.Millisecond),
		median(phases["total"]).Round(time.Millisecond))
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// useFallbackKernel makes the daemon's guests boot Debian's fallback
// kernel (what the demo boots until the minimal kernel is built): a
// FERRY_LIB with only the tree's ferry-init and the fallback in it.
func useFallbackKernel(t *testing.T) {
	init := vmprereq.Init(t)
	dir := t.TempDir()
	fb := filepath.Join(filepath.Dir(init), kernel.FallbackDir)
	if _, err := os.Stat(filepath.Join(fb, "vmlinuz")); err != nil {
		t.Fatalf("FERRY_BENCH_KERNEL=fallback: no fallback kernel (scripts/kernel.sh fallback): %v", err)
	}
	for _, l := range [][2]string{{init, filepath.Base(init)}, {fb, kernel.FallbackDir}} {
		if err := os.Symlink(l[0], filepath.Join(dir, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(kernel.EnvLib, dir)
	t.Logf("guests boot the fallback kernel (%s)", fb)
}

// TestWarmVsCold runs every measure, warm and cold alternating, and logs
// medians and ratios (goals: run --rm true warm ≤ 0.3× cold; create →
// entrypoint ≤ 250 ms warm, under TCG).
func TestWarmVsCold(t *testing.T) {
	prereq.OptIn(t, "FERRY_BENCH", "the warm-start benchmark")
	vmprereq.Require(t)
	if os.Getenv("FERRY_BENCH_KERNEL") == "fallback" {
		useFallbackKernel(t)
	}
	c, logs := startDaemon(t)
	t.Logf("load before: %s", loadavg())
	n := 7
	if v, err := strconv.Atoi(os.Getenv("FERRY_BENCH_N")); err == nil && v > 0 {
		n = v
	}
	// The first warm start builds the template (its time is in the log);
	// the first cold one warms the base image and page cache.
	first := runTrue(t, c, false)
	runTrue(t, c, true)
	if m := regexp.MustCompile(`warm-start template built.*took=(\S+) bytes=(\d+) memory_bytes=(\d+)`).FindStringSubmatch(logs.String()); m != nil {
		t.Logf("template build: %s, state %s bytes, memory %s bytes of data (first warm run --rm true, build included: %v)", m[1], m[2], m[3], first.Round(time.Millisecond))
	}
	var warm, cold []time.Duration
	for range n {
		warm = append(warm, runTrue(t, c, false))
		settle()
		cold = append(cold, runTrue(t, c, true))
		settle()
	}
	t.Logf("run --rm true: warm median %v %v", median(warm), warm)
	t.Logf("run --rm true: cold median %v %v", median(cold), cold)
	t.Logf("run --rm true: ratio %.2f (goal <= 0.30); load %s", float64(median(warm))/float64(median(cold)), loadavg())
	warm, cold = nil, nil
	for range n {
		warm = append(warm, toEntrypoint(t, c, false))
		settle()
		cold = append(cold, toEntrypoint(t, c, true))
		settle()
	}
	t.Logf("create → entrypoint output: warm median %v %v (goal <= 250ms)", median(warm), warm)
	t.Logf("create → entrypoint output: cold median %v %v", median(cold), cold)
	t.Logf("create → entrypoint output: ratio %.2f; load %s", float64(median(warm))/float64(median(cold)), loadavg())
	k := 20
	if v, err := strconv.Atoi(os.Getenv("FERRY_BENCH_CONCURRENT")); err == nil && v > 0 {
		k = v
	}
	logPhases(t, "one at a time", logs.String())
	seq := len(logs.String())
	wd, wm := concurrent(t, c, k, false)
	t.Logf("%d concurrent warm: all answer exec after %v; idle per VMM Rss %d MiB, Pss %d MiB, RssShmem %d MiB; load %s", k, wd.Round(time.Millisecond), wm.rss>>10, wm.pss>>10, wm.shmem>>10, loadavg())
	cd, cm := concurrent(t, c, k, true)
	t.Logf("%d concurrent cold: all answer exec after %v; idle per VMM Rss %d MiB, Pss %d MiB, RssShmem %d MiB; load %s", k, cd.Round(time.Millisecond), cm.rss>>10, cm.pss>>10, cm.shmem>>10, loadavg())
	t.Logf("%d concurrent: ratio %.2f; Rss warm/cold %.2f, Pss warm/cold %.2f", k, float64(wd)/float64(cd), float64(wm.rss)/float64(cm.rss), float64(wm.pss)/float64(cm.pss))
	logPhases(t, fmt.Sprintf("%d concurrent", k), logs.String()[seq:])
	if p := os.Getenv("FERRY_BENCH_LOG"); p != "" {
		if err := os.WriteFile(p, []byte(logs.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
	if strings.Contains(logs.String(), "booting cold") {
		t.Errorf("a warm start fell back to a cold boot:\n%s", logs)
	}
}
