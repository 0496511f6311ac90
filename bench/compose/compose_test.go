package compose

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/cli"
	"github.com/ferryvm/ferry/internal/daemon"
	"github.com/ferryvm/ferry/internal/testimage"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
	"github.com/ferryvm/ferry/internal/testutil/prereq/vmprereq"
	"github.com/ferryvm/ferry/internal/vmm"
)

// asFerry makes the test binary ferry's CLI.
const asFerry = "FERRY_BENCH_AS_FERRY"

func TestMain(m *testing.M) {
	vmm.Reexec()
	if os.Getenv(asFerry) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := cli.Main(ctx, os.Args[1:])
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

const project = `
name: bench
services:
  a: {image: busybox:bench, command: [sleep, "1000"]}
  b: {image: busybox:bench, command: [sleep, "1000"]}
  c: {image: busybox:bench, command: [sleep, "1000"]}
`

// TestComposeUpVsSequentialRuns times `ferry compose up -d --wait` of
// three independent services against three `ferry run -d` one after the
// other, each waited for until `ferry exec ID true` succeeds (what compose
// waits for), and against one such run (FERRY_BENCH_N rounds, default 5,
// alternating). Goal: compose ≤ 0.7× sequential on two cores.
func TestComposeUpVsSequentialRuns(t *testing.T) {
	prereq.OptIn(t, "FERRY_BENCH", "the compose up benchmark")
	vmprereq.Require(t)
	if os.Getenv("FERRY_QEMU_ACCEL") == "" {
		t.Setenv("FERRY_QEMU_ACCEL", "tcg")
	}
	env := start(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(file, []byte(project), 0o644); err != nil {
		t.Fatal(err)
	}
	n := 5
	if v, err := strconv.Atoi(os.Getenv("FERRY_BENCH_N")); err == nil && v > 0 {
		n = v
	}
	composeUp := func() time.Duration {
		t0 := time.Now()
		env.ferry(t, "compose", "-f", file, "up", "-d", "--wait")
		d := time.Since(t0)
		env.ferry(t, "compose", "-f", file, "down")
		return d
	}
	runs := func(k int) time.Duration {
		var ids []string
		t0 := time.Now()
		for range k {
			id := strings.TrimSpace(env.ferry(t, "run", "-d", "busybox:bench", "sleep", "1000"))
			env.waitExec(t, id)
			ids = append(ids, id)
		}
		d := time.Since(t0)
		for _, id := range ids {
			env.ferry(t, "rm", "-f", id)
		}
		return d
	}
	runs(1) // warm: the rootfs base is built on first use
	var c, s, one []time.Duration
	loads := []string{loadavg()}
	for i := range n {
		steps := []func(){
			func() { c = append(c, composeUp()) },
			func() { s = append(s, runs(3)) },
			func() { one = append(one, runs(1)) },
		}
		if i%2 == 1 {
			slices.Reverse(steps)
		}
		for _, f := range steps {
			f()
		}
		loads = append(loads, loadavg())
	}
	mc, ms, m1 := median(c), median(s), median(one)
	t.Logf("compose up -d --wait, 3 services: median %v (all %v)", mc.Round(time.Millisecond), c)
	t.Logf("3 × (ferry run -d + wait), sequential: median %v (all %v)", ms.Round(time.Millisecond), s)
	t.Logf("1 × (ferry run -d + wait): median %v (all %v)", m1.Round(time.Millisecond), one)
	t.Logf("compose/sequential %.2f×, compose/single %.2f× over %d rounds; load %s", float64(mc)/float64(ms), float64(mc)/float64(m1), n, strings.Join(loads, " | "))
}

type benchEnv struct {
	env []string
}

// start runs a daemon (network in a fresh netns) with the busybox image
// loaded as busybox:bench.
func start(t *testing.T) *benchEnv {
	t.Helper()
	ns := prereq.NetNS(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "ferry.sock")
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Config{Root: filepath.Join(dir, "root"), Socket: sock, NetNS: ns,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("daemon: %v", err)
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
	})
	img, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("busybox:bench")
	var buf bytes.Buffer
	if err := tarball.Write(tag, img, &buf); err != nil {
		t.Fatal(err)
	}
	if _, err := c.LoadImages(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	return &benchEnv{env: append(os.Environ(), asFerry+"=1", "FERRY_HOST=unix://"+sock, "FERRY_COMPOSE_STATE="+filepath.Join(dir, "compose"))}
}

// ferry runs the test binary as ferry's CLI and returns its stdout.
func (e *benchEnv) ferry(t *testing.T, args ...string) string {
	t.Helper()
	out, err := e.try(args...)
	if err != nil {
		t.Fatalf("ferry %v: %v\n%s", args, err, out)
	}
	return out
}

func (e *benchEnv) try(args ...string) (string, error) {
	c := exec.Command(os.Args[0], args...)
	c.Env = e.env
	var out, errOut bytes.Buffer
	c.Stdout, c.Stderr = &out, &errOut
	err := c.Run()
	if err != nil {
		return out.String() + errOut.String(), err
	}
	return out.String(), nil
}

// waitExec polls `ferry exec ID true` until the machine takes it.
func (e *benchEnv) waitExec(t *testing.T, id string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		out, err := e.try("exec", id, "true")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("machine %s never took exec: %s", id, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
