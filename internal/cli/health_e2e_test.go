package cli

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
)

// TestHealthCheckCLI boots two machines with --health-cmd: "ok" passes
// once a file appears in the guest (a long start period keeps it starting
// until then), "bad" always fails. ps, ps --filter health=, inspect, wait
// --state healthy and events show each one's health.
func TestHealthCheckCLI(t *testing.T) {
	e := vmEnv(t)
	t.Parallel()

	var events syncBuffer
	ev := e.command(nil, "events", "--filter", "event=health_status")
	ev.Stdout, ev.Stderr = &events, &events
	if err := ev.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ev.Process.Kill(); _ = ev.Wait() })

	okID := strings.TrimSpace(e.ok("create", "--name", "ok", "--health-cmd", "test -f /tmp/ready && echo ready",
		"--health-interval", "1s", "--health-start-period", "10m", "--health-start-interval", "1s",
		"busybox:vm", "sleep", "1000"))
	if m := e.inspect("ok"); m.State != types.StateCreated || m.Config.Healthcheck == nil ||
		strings.Join(m.Config.Healthcheck.Test, " ") != "CMD-SHELL test -f /tmp/ready && echo ready" {
		t.Fatalf("after create: state %s, healthcheck %+v", m.State, m.Config.Healthcheck)
	}
	e.ok("start", "ok")
	badID := strings.TrimSpace(e.ok("run", "-d", "--name", "bad", "--health-cmd", "echo probe-failed >&2; exit 1",
		"--health-interval", "1s", "--health-retries", "2", "busybox:vm", "sleep", "1000"))

	// ok fails its checks (no file yet) inside its start period: starting.
	e.eventually("ok's failed checks in its log", 3*time.Minute, func() bool {
		m := e.inspect("ok")
		return m.Health != nil && len(m.Health.Log) > 0
	})
	if m := e.inspect("ok"); m.Health.Status != types.HealthStarting || m.Health.Log[0].ExitCode != 1 {
		t.Fatalf("ok before the file: %+v", m.Health)
	}
	if ps := psLine(t, e.ok("ps"), "ok"); !strings.Contains(ps, "(health: starting)") {
		t.Fatalf("ps line of a starting machine: %q", ps)
	}
	if ids := strings.Fields(e.ok("ps", "-q", "--filter", "health=starting")); !slices.Contains(ids, okID) {
		t.Fatalf("ps --filter health=starting = %q, want %s in it", ids, okID)
	}
	if ids := e.ok("ps", "-q", "--filter", "health=none"); ids != "" {
		t.Fatalf("ps --filter health=none = %q, want none", ids)
	}

	// wait --state healthy blocks until the file makes the check pass.
	var waitOut syncBuffer
	w := e.command(nil, "wait", "--state", "healthy", "--timeout", "5m", "ok")
	w.Stdout, w.Stderr = &waitOut, &waitOut
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- w.Wait() }()
	select {
	case err := <-waited:
		t.Fatalf("wait --state healthy returned before the check could pass: %v: %s", err, waitOut.String())
	case <-time.After(2 * time.Second):
	}
	e.ok("exec", "ok", "touch", "/tmp/ready")
	select {
	case err := <-waited:
		if err != nil || waitOut.String() != "healthy\n" {
			t.Fatalf("wait --state healthy: %v: %q", err, waitOut.String())
		}
	case <-time.After(5 * time.Minute):
		t.Fatal("wait --state healthy did not return")
	}
	m := e.inspect("ok")
	last := m.Health.Log[len(m.Health.Log)-1]
	if m.Health.Status != types.HealthHealthy || m.Health.FailingStreak != 0 || last.ExitCode != 0 ||
		last.Output != "ready\n" || last.End.Before(last.Start) || len(m.Health.Log) > 5 {
		t.Fatalf("ok's health after the file: %+v", m.Health)
	}
	if ps := psLine(t, e.ok("ps"), "ok"); !strings.Contains(ps, "(healthy)") {
		t.Fatalf("ps line of a healthy machine: %q", ps)
	}
	if ids := e.ok("ps", "-q", "--filter", "health=healthy"); ids != okID+"\n" {
		t.Fatalf("ps --filter health=healthy = %q, want %s", ids, okID)
	}
	if out := e.ok("inspect", "--format", "{{.Health.Status}} {{.Health.FailingStreak}}", "ok"); out != "healthy 0\n" {
		t.Fatalf("inspect --format: %q", out)
	}

	// bad: two failures in a row make it unhealthy, with its output kept.
	e.eventually("bad to be unhealthy", 3*time.Minute, func() bool {
		m := e.inspect("bad")
		return m.Health != nil && m.Health.Status == types.HealthUnhealthy
	})
	m = e.inspect("bad")
	if m.Health.FailingStreak < 2 || m.Health.Log[len(m.Health.Log)-1].Output != "probe-failed\n" || m.Health.Log[0].ExitCode != 1 {
		t.Fatalf("bad's health: %+v", m.Health)
	}
	if ps := psLine(t, e.ok("ps"), "bad"); !strings.Contains(ps, "(unhealthy)") {
		t.Fatalf("ps line of an unhealthy machine: %q", ps)
	}
	if ids := e.ok("ps", "-q", "--filter", "health=unhealthy"); ids != badID+"\n" {
		t.Fatalf("ps --filter health=unhealthy = %q, want %s", ids, badID)
	}
	if r := e.fails([]string{"bad is unhealthy", "probe-failed"}, "wait", "--state", "healthy", "bad"); r.code != 1 {
		t.Fatalf("wait --state healthy on an unhealthy machine: %s", r)
	}

	e.eventually("health_status events of both machines", time.Minute, func() bool {
		s := events.String()
		return strings.Contains(s, "health_status: healthy "+okID) && strings.Contains(s, "health_status: unhealthy "+badID)
	})
}

// psLine is the line of ps's table that ends with name.
func psLine(t *testing.T, table, name string) string {
	t.Helper()
	for _, l := range strings.Split(table, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[len(f)-1] == name {
			return l
		}
	}
	t.Fatalf("no machine %s in ps:\n%s", name, table)
	return ""
}
