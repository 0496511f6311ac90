package cli

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
`, port)
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.run(nil, "compose", "-f", file, "--profile", "sick", "down", "-v") })

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
}
