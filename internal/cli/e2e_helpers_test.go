package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/vmm"
)

// The end-to-end tests run ferry as real processes: the test binary
// re-executes itself as `ferry` when FERRY_TEST_AS_FERRY=1, so a daemon can
// be SIGKILLed and the CLI's exit codes and output are the real ones.
const asFerryEnv = "FERRY_TEST_AS_FERRY"

func TestMain(m *testing.M) {
	vmm.Reexec() // as ferry's main does: the console writer of the daemon's VMs
	if os.Getenv(asFerryEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := Main(ctx, os.Args[1:])
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// ferryEnv is one daemon (root + socket) and the environment CLI calls share.
type ferryEnv struct {
	t         *testing.T
	root      string
	sock      string
	dockerCfg string // DOCKER_CONFIG of the CLI
	daemonCfg string // DOCKER_CONFIG of the daemon
	daemon    *exec.Cmd
	exited    chan struct{} // closed when the daemon process is gone
	daemonLog *syncBuffer
	extra     []string // extra daemon flags
}

func newFerryEnv(t *testing.T, extra ...string) *ferryEnv {
	dir := t.TempDir()
	e := &ferryEnv{t: t, root: filepath.Join(dir, "root"), sock: filepath.Join(dir, "run", "ferry.sock"),
		dockerCfg: filepath.Join(dir, "cli-docker"), daemonCfg: filepath.Join(dir, "daemon-docker"), extra: extra}
	e.startDaemon()
	return e
}

func (e *ferryEnv) command(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asFerryEnv+"=1", "FERRY_HOST=unix://"+e.sock)
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// startDaemon starts `ferry daemon` on e's root and waits for its API.
func (e *ferryEnv) startDaemon() {
	t := e.t
	t.Helper()
	// The mirror is off unless a test asks (its default port is shared).
	// No template built at start and no spare kept unless a test asks
	// (vmEnv): most of these daemons boot no machine.
	args := append([]string{"daemon", "--debug", "--root", e.root, "--socket", e.sock, "--mirror-addr=", "--prewarm=false", "--spares=false"}, e.extra...)
	cmd := e.command([]string{"DOCKER_CONFIG=" + e.daemonCfg}, args...)
	e.daemonLog = &syncBuffer{}
	cmd.Stdout, cmd.Stderr = e.daemonLog, e.daemonLog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	e.daemon, e.exited = cmd, exited
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	c, _ := api.NewClient("unix://"+e.sock, "")
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("daemon exited at start: %s", e.daemonLog)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Do(ctx, "GET", "/v1/_ping", nil, nil)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not answering after 30s: %v\n%s", err, e.daemonLog)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// killDaemon SIGKILLs the daemon process and waits for it to be gone.
func (e *ferryEnv) killDaemon() {
	e.t.Helper()
	if err := e.daemon.Process.Kill(); err != nil {
		e.t.Fatal(err)
	}
	<-e.exited
}

// syncBuffer is a bytes.Buffer safe for a child's output and the test.
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

// result is one CLI run.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs `ferry args...` with stdin (may be nil).
func (e *ferryEnv) run(stdin io.Reader, args ...string) result {
	e.t.Helper()
	cmd := e.command([]string{"DOCKER_CONFIG=" + e.dockerCfg}, args...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		e.t.Fatalf("ferry %v: %v", args, err)
	}
	return r
}

// ok runs ferry and fails the test unless it exits 0.
func (e *ferryEnv) ok(args ...string) string {
	e.t.Helper()
	r := e.run(nil, args...)
	if r.code != 0 {
		e.t.Fatalf("ferry %s: %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

// fails runs ferry, wants a non-zero exit and a one-line error containing
// every want, and returns the result.
func (e *ferryEnv) fails(wants []string, args ...string) result {
	e.t.Helper()
	r := e.run(nil, args...)
	if r.code == 0 {
		e.t.Fatalf("ferry %s: want failure, got %s", strings.Join(args, " "), r)
	}
	line := strings.TrimRight(r.stderr, "\n")
	if strings.Contains(line, "\n") || !strings.HasPrefix(line, "ferry: ") {
		e.t.Errorf("ferry %s: want one `ferry: ...` line on stderr, got %q", strings.Join(args, " "), r.stderr)
	}
	for _, w := range wants {
		if !strings.Contains(line, w) {
			e.t.Errorf("ferry %s: error %q does not mention %q", strings.Join(args, " "), line, w)
		}
	}
	return r
}
