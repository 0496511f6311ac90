package dockerapi_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestDockerCLIHealth: docker run --health-cmd makes a container whose
// health docker inspect, docker ps (STATUS and --filter health=) and docker
// events show as dockerd's would: starting while its check fails in the
// start period, healthy once it passes.
func TestDockerCLIHealth(t *testing.T) {
	e := newDockerEnv(t)

	var events syncBuffer
	ev := e.cmd("events", "--filter", "event=health_status", "--format", "{{.Action}} {{.Actor.Attributes.name}}")
	ev.Stdout, ev.Stderr = &events, &events
	if err := ev.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ev.Process.Kill(); _ = ev.Wait() })

	e.ok("run", "-d", "--name", "hc", "--health-cmd", "test -f /tmp/ready && echo ready", "--health-interval", "1s",
		"--health-start-period", "10m", "--health-start-interval", "1s", "busybox:vm", "sleep", "1000")
	status := func() string { return strings.TrimSpace(e.ok("inspect", "--format", "{{.State.Health.Status}}", "hc")) }
	if s := status(); s != "starting" {
		t.Fatalf("health of a new container = %q, want starting", s)
	}
	eventually(t, "a failed check in the start period", func() error {
		var h struct {
			Status string
			Log    []struct{ ExitCode int }
		}
		if err := json.Unmarshal([]byte(e.ok("inspect", "--format", "{{json .State.Health}}", "hc")), &h); err != nil {
			return err
		}
		if h.Status != "starting" || len(h.Log) == 0 || h.Log[0].ExitCode != 1 {
			return fmt.Errorf("health %+v, want starting with a failed check", h)
		}
		return nil
	})
	if out := e.ok("ps", "--filter", "health=starting", "--format", "{{.Names}} {{.Status}}"); !strings.HasPrefix(out, "hc Up ") ||
		!strings.HasSuffix(out, " (health: starting)\n") {
		t.Fatalf("docker ps --filter health=starting = %q", out)
	}
	if out := e.ok("ps", "-q", "--filter", "health=healthy"); out != "" {
		t.Fatalf("docker ps --filter health=healthy before the check passes = %q", out)
	}

	e.ok("exec", "hc", "touch", "/tmp/ready")
	eventually(t, "healthy", func() error {
		if s := status(); s != "healthy" {
			return fmt.Errorf("health %q", s)
		}
		return nil
	})
	if out := e.ok("ps", "--filter", "health=healthy", "--format", "{{.Names}} {{.Status}}"); !strings.HasPrefix(out, "hc Up ") ||
		!strings.HasSuffix(out, " (healthy)\n") {
		t.Fatalf("docker ps --filter health=healthy = %q", out)
	}
	var h struct {
		FailingStreak int
		Log           []struct {
			ExitCode int
			Output   string
		}
	}
	if err := json.Unmarshal([]byte(e.ok("inspect", "--format", "{{json .State.Health}}", "hc")), &h); err != nil {
		t.Fatal(err)
	}
	if last := h.Log[len(h.Log)-1]; h.FailingStreak != 0 || last.ExitCode != 0 || last.Output != "ready\n" || len(h.Log) > 5 {
		t.Fatalf("health after the check passed: %+v", h)
	}
	eventually(t, "the health_status event", func() error {
		if !strings.Contains(events.String(), "health_status: healthy hc\n") {
			return fmt.Errorf("docker events printed %q", events.String())
		}
		return nil
	})
	if r := e.run(nil, "ps", "--filter", "health=sick"); r.code == 0 || !strings.Contains(r.stderr, "invalid value for health") {
		t.Fatalf("docker ps --filter health=sick: %+v", r)
	}
}
