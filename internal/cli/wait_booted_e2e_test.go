package cli

import (
	"strings"
	"testing"
)

// TestWaitBootedCLI: wait --state booted returns once the machine's init
// takes exec requests, so an exec right after it runs; on a machine that
// has stopped it returns at once with the state.
func TestWaitBootedCLI(t *testing.T) {
	e := vmEnv(t)
	t.Parallel()

	e.ok("run", "-d", "--name", "b", "busybox:vm", "sleep", "1000")
	if out := e.ok("wait", "--state", "booted", "--timeout", "5m", "b"); out != "started\n" {
		t.Fatalf("wait --state booted printed %q, want started", out)
	}
	if r := e.run(nil, "exec", "b", "echo", "in"); r.code != 0 || r.stdout != "in\n" {
		t.Fatalf("exec right after wait --state booted: %s", r)
	}

	e.ok("run", "-d", "--name", "quick", "busybox:vm", "true")
	e.ok("wait", "quick")
	if out := e.ok("wait", "--state", "booted", "quick"); strings.TrimSpace(out) != "stopped" {
		t.Fatalf("wait --state booted on a stopped machine printed %q, want stopped", out)
	}
}
