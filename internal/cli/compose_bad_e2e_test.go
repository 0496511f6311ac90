package cli

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
)

// TestComposeBadInputVMs: on real VMs, a host port two services want
// fails the second with one line naming the port and leaves no machine of
// it behind; a healthcheck that never passes makes `up --wait` exit
// non-zero naming the service and its last check's output.
func TestComposeBadInputVMs(t *testing.T) {
	e := vmEnv(t)
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "compose.yaml")
	body := fmt.Sprintf(`
name: bad
services:
  one:
    image: busybox:vm
    command: [sleep, "1000"]
    ports: ["%[1]d:80"]
  two:
    image: busybox:vm
    command: [sleep, "1000"]
    ports: ["%[1]d:80"]
    depends_on: [one]
  sick:
    image: busybox:vm
    command: [sleep, "1000"]
    healthcheck:
      test: [CMD-SHELL, "echo not-ready-yet; exit 1"]
      interval: 1s
      retries: 2
    profiles: [sick]
  slow:
    image: busybox:vm
    command: [sleep, "1000"]
    healthcheck:
      test: [CMD-SHELL, "exit 1"]
      interval: 1s
      retries: 1000
    profiles: [hang]
  after:
    image: busybox:vm
    command: [sleep, "1000"]
    depends_on: {slow: {condition: service_healthy}}
    profiles: [hang]
`, port)
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.run(nil, "compose", "-f", file, "--profile", "sick", "--profile", "hang", "down", "-v") })

	r := e.run(nil, "compose", "-f", file, "up", "-d")
	if r.code == 0 || !strings.Contains(r.stderr, "service two") || !strings.Contains(r.stderr, fmt.Sprint(port)) {
		t.Fatalf("two services on host port %d: %s", port, r)
	}
	t.Log(strings.TrimSpace(r.stderr))
	if ps := e.ok("ps", "-a", "--app", "bad"); strings.Contains(ps, "bad-two-1") || !strings.Contains(ps, "bad-one-1") {
		t.Errorf("after the failed create (want one, and nothing of two):\n%s", ps)
	}

	r = e.run(nil, "compose", "-f", file, "--profile", "sick", "up", "-d", "--wait", "sick")
	if r.code == 0 || !strings.Contains(r.stderr, "service sick") || !strings.Contains(r.stderr, "not-ready-yet") {
		t.Fatalf("up --wait of a service that never turns healthy: %s", r)
	}
	t.Log(strings.TrimSpace(r.stderr))

	// Ctrl-C while an attached up waits for slow to be healthy: the
	// machines it started (slow, a dependency) stop, after never starts.
	up := e.command(nil, "compose", "-f", file, "--profile", "hang", "up", "after")
	var out syncBuffer
	up.Stdout, up.Stderr = &out, &out
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = up.Wait(); close(exited) }()
	e.eventually("slow started", 3*time.Minute, func() bool { return strings.Contains(out.String(), "machine=bad-slow-1") })
	if err := up.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(2 * time.Minute):
		_ = up.Process.Kill()
		t.Fatalf("attached up ignored Ctrl-C:\n%s", &out)
	}
	if up.ProcessState.ExitCode() != 130 {
		t.Errorf("attached up after Ctrl-C: exit %d, want 130\n%s", up.ProcessState.ExitCode(), &out)
	}
	var ms []*types.Machine
	if err := json.Unmarshal([]byte(e.ok("inspect", "--app", "bad", "bad-slow-1")), &ms); err != nil || len(ms) != 1 {
		t.Fatalf("inspect bad-slow-1: %v", err)
	}
	if ms[0].State != types.StateStopped {
		t.Errorf("after Ctrl-C bad-slow-1 is %s, want stopped\n%s", ms[0].State, &out)
	}
	if ps := e.ok("ps", "-a", "--app", "bad"); strings.Contains(ps, "bad-after-1") {
		t.Errorf("after was created although slow never turned healthy:\n%s", ps)
	}
}
