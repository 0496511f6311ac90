package dockerapi

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/cli"
	"github.com/ferryvm/ferry/internal/daemon"
	"github.com/ferryvm/ferry/internal/testimage"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
	"github.com/ferryvm/ferry/internal/testutil/prereq/vmprereq"
	"github.com/ferryvm/ferry/internal/vmm"
)

// asFerry makes the test binary ferry's CLI (the ferry side of the run
// benchmark).
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

type bench struct {
	ferrySock, dockerSock string
	client                *api.Client
	env                   []string
}

// start runs a daemon (network in a fresh netns) with the busybox image
// loaded as busybox:bench.
func start(t testing.TB) *bench {
	t.Helper()
	ns := prereq.NetNS(t)
	dir := t.TempDir()
	b := &bench{ferrySock: filepath.Join(dir, "ferry.sock"), dockerSock: filepath.Join(dir, "docker.sock")}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Config{Root: filepath.Join(dir, "root"), Socket: b.ferrySock, NetNS: ns, Spares: true,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("daemon: %v", err)
	}
	var err error
	if b.client, err = api.NewClient("unix://"+b.ferrySock, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if list, err := b.client.ListMachines(context.Background(), "", true); err == nil {
			for _, m := range list {
				_ = b.client.DestroyMachine(context.Background(), m.App, m.ID, true)
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
	if _, err := b.client.LoadImages(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "docker-config")
	_ = os.MkdirAll(cfg, 0o700)
	b.env = append(os.Environ(), "DOCKER_HOST=unix://"+b.dockerSock, "DOCKER_CONFIG="+cfg, "FERRY_HOST=unix://"+b.ferrySock)
	return b
}

// timed runs a command and returns its wall time.
func (b *bench) timed(t testing.TB, name string, args ...string) time.Duration {
	t.Helper()
	c := exec.Command(name, args...)
	c.Env = b.env
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	t0 := time.Now()
	if err := c.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out.String())
	}
	return time.Since(t0)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return string(bytes.TrimSpace(b))
}

// TestDockerRunVsFerryRun times `docker run --rm busybox:bench true`
// against `ferry run --rm busybox:bench true` on one daemon, alternating
// (FERRY_BENCH_N rounds, default 9). Goal: docker ≤ 1.05× ferry.
func TestDockerRunVsFerryRun(t *testing.T) {
	prereq.OptIn(t, "FERRY_BENCH", "the Docker API run benchmark")
	vmprereq.Require(t)
	docker := prereq.Tool(t, "docker")
	if os.Getenv("FERRY_QEMU_ACCEL") == "" {
		t.Setenv("FERRY_QEMU_ACCEL", "tcg")
	}
	b := start(t)
	b.env = append(b.env, asFerry+"=1")
	n := 9
	if v, err := strconv.Atoi(os.Getenv("FERRY_BENCH_N")); err == nil && v > 0 {
		n = v
	}
	// Warm both paths once (the rootfs base is built on first use).
	b.timed(t, docker, "run", "--rm", "busybox:bench", "true")
	b.timed(t, os.Args[0], "run", "--rm", "busybox:bench", "true")
	var d, f []time.Duration
	for i := range n {
		// Each run after the daemon is idle again: its spare restored and
		// rehearsed (docs/warm-starts.md), as for a run seconds after the last.
		run := func() {
			time.Sleep(2500 * time.Millisecond)
			d = append(d, b.timed(t, docker, "run", "--rm", "busybox:bench", "true"))
		}
		frun := func() {
			time.Sleep(2500 * time.Millisecond)
			f = append(f, b.timed(t, os.Args[0], "run", "--rm", "busybox:bench", "true"))
		}
		if i%2 == 0 {
			run()
			frun()
		} else {
			frun()
			run()
		}
	}
	md, mf := median(d), median(f)
	t.Logf("docker run --rm: median %v (all %v)", md.Round(time.Millisecond), d)
	t.Logf("ferry run --rm:  median %v (all %v)", mf.Round(time.Millisecond), f)
	t.Logf("ratio docker/ferry %.3f× over %d rounds; load %s", float64(md)/float64(mf), n, loadavg())
}

// TestDockerPS200 times `docker ps -a` (the docker CLI, and the bare API
// call) with 200 machines. Goal: ≤ 50 ms.
func TestDockerPS200(t *testing.T) {
	prereq.OptIn(t, "FERRY_BENCH", "the docker ps benchmark")
	prereq.Root(t, "the daemon's network namespace")
	docker := prereq.Tool(t, "docker")
	b := start(t)
	var empty []time.Duration
	for range 21 {
		empty = append(empty, b.timed(t, docker, "ps", "-a"))
	}
	for i := range 200 {
		if _, err := b.client.CreateMachine(context.Background(), "default", types.CreateRequest{Name: fmt.Sprintf("m%03d", i),
			SkipLaunch: true, Config: types.Config{Image: "busybox:bench", Metadata: map[string]string{"i": strconv.Itoa(i)}}}); err != nil {
			t.Fatal(err)
		}
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", b.dockerSock)
	}}}
	// The floor: the same CLI process answering from one small request.
	// -q: the same request and decode without the CLI's per-row table.
	var cliT, apiT, floorT, quietT []time.Duration
	for range 21 {
		floorT = append(floorT, b.timed(t, docker, "version", "--format", "x"))
		quietT = append(quietT, b.timed(t, docker, "ps", "-a", "-q"))
		cliT = append(cliT, b.timed(t, docker, "ps", "-a"))
		t0 := time.Now()
		resp, err := hc.Get("http://docker/v1.50/containers/json?all=1")
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		apiT = append(apiT, time.Since(t0))
		if n < 200*100 {
			t.Fatalf("list of 200 is %d bytes", n)
		}
	}
	t.Logf("docker ps -a, 200 machines: median %v (CLI process included; with 0 machines %v; docker version --format x %v; docker ps -a -q %v); GET /containers/json?all=1: median %v; load %s",
		median(cliT).Round(100*time.Microsecond), median(empty).Round(100*time.Microsecond), median(floorT).Round(100*time.Microsecond),
		median(quietT).Round(100*time.Microsecond),
		median(apiT).Round(10*time.Microsecond), loadavg())
}
