package dockerapi_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/daemon"
	"github.com/ferryvm/ferry/internal/testimage"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
	"github.com/ferryvm/ferry/internal/testutil/prereq/vmprereq"
	"github.com/ferryvm/ferry/internal/vmm"
)

func TestMain(m *testing.M) {
	vmm.Reexec() // the console writer of the daemon's VMs is this binary
	if os.Getenv(tcChildEnv) == "ryuk" {
		if err := testcontainersRyukClient(); err != nil {
			fmt.Fprintln(os.Stderr, "testcontainers:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(tcChildEnv) == "1" {
		if err := testcontainersClient(); err != nil {
			fmt.Fprintln(os.Stderr, "testcontainers:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// dockerEnv is a ferry daemon (in this process, its network side in a
// fresh netns) with the busybox test image loaded as busybox:vm, driven by
// the real docker CLI.
type dockerEnv struct {
	t      *testing.T
	docker string   // the docker CLI
	env    []string // DOCKER_HOST, DOCKER_CONFIG
	netns  string
	sock   string // the Docker API socket
	ferry  *api.Client
	dir    string
	log    *syncBuffer
}

func newDockerEnv(t *testing.T) *dockerEnv {
	t.Helper()
	vmprereq.Require(t)
	docker := prereq.Tool(t, "docker")
	if os.Getenv("FERRY_QEMU_ACCEL") == "" {
		t.Setenv("FERRY_QEMU_ACCEL", "tcg") // behaviour, not speed: some hosts' /dev/kvm cannot run guests
	}
	ns := prereq.NetNS(t)
	dir := t.TempDir()
	e := &dockerEnv{t: t, docker: docker, netns: ns, dir: dir, log: &syncBuffer{},
		sock: filepath.Join(dir, "run", "docker.sock")}
	cfg := daemon.Config{Root: filepath.Join(dir, "root"), Socket: filepath.Join(dir, "run", "ferry.sock"), NetNS: ns,
		Logger: slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	// FERRY_TEST_WARM_STARTS=true|false: warm starts on or off (as
	// internal/cli's VM tests); unset, the daemon's default.
	if v, err := strconv.ParseBool(os.Getenv("FERRY_TEST_WARM_STARTS")); err == nil {
		cfg.ColdBoots = !v
	}
	ready := make(chan struct{})
	cfg.Ready = func() { close(ready) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- daemon.Run(ctx, cfg) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("daemon did not start: %v\n%s", err, e.log)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("daemon not ready after 60s")
	}
	var err error
	if e.ferry, err = api.NewClient("unix://"+cfg.Socket, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Machines outlive their daemon by design: remove them first.
		bg := context.Background()
		if ms, err := e.ferry.ListMachines(bg, "", true); err == nil {
			for _, m := range ms {
				_ = e.ferry.DestroyMachine(bg, m.App, m.ID, true)
			}
		}
		cancel()
		<-done
		if t.Failed() {
			t.Logf("daemon log:\n%s", e.log)
		}
	})
	cfgDir := filepath.Join(dir, "docker-config")
	if err := os.MkdirAll(cfgDir, 0o700); err != nil {
		t.Fatal(err)
	}
	e.env = []string{"DOCKER_HOST=unix://" + e.sock, "DOCKER_CONFIG=" + cfgDir}

	img, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("busybox:vm")
	tarPath := filepath.Join(dir, "busybox.tar")
	if err := tarball.WriteToFile(tarPath, tag, img); err != nil {
		t.Fatal(err)
	}
	if out := e.ok("load", "-i", tarPath); !strings.Contains(out, "Loaded image: busybox:vm") {
		t.Fatalf("docker load printed %q", out)
	}
	return e
}

type result struct {
	stdout, stderr string
	code           int
}

func (e *dockerEnv) cmd(args ...string) *exec.Cmd {
	c := exec.Command(e.docker, args...)
	c.Env = append(os.Environ(), e.env...)
	return c
}

// run runs the docker CLI with stdin (may be nil).
func (e *dockerEnv) run(stdin io.Reader, args ...string) result {
	e.t.Helper()
	c := e.cmd(args...)
	var out, errb bytes.Buffer
	c.Stdin, c.Stdout, c.Stderr = stdin, &out, &errb
	err := c.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		e.t.Fatalf("docker %v: %v", args, err)
	}
	return r
}

// ok runs docker and fails the test unless it exits 0.
func (e *dockerEnv) ok(args ...string) string {
	e.t.Helper()
	r := e.run(nil, args...)
	if r.code != 0 {
		e.t.Fatalf("docker %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// stream starts a docker command that runs until killed (events) and
// returns its stdout lines; the command ends with the test.
func (e *dockerEnv) stream(t *testing.T, args ...string) <-chan string {
	t.Helper()
	c := e.cmd(args...)
	stdout, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	time.Sleep(500 * time.Millisecond) // the stream is open before what follows
	return lines
}

// inNetns runs a program in the daemon's network namespace (where
// published ports listen).
func (e *dockerEnv) inNetns(args ...string) (string, error) {
	ip := prereq.Tool(e.t, "ip")
	out, err := exec.Command(ip, append([]string{"netns", "exec", e.netns}, args...)...).CombinedOutput()
	return string(out), err
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// eventually retries f until it returns nil or a minute passes.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
