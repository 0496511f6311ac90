package cli

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// vmmsRunning counts processes whose command line names a path under
// root's machines (the VMMs of its machines).
func vmmsRunning(root string) int { return len(vmmProcs(root)) }

// vmmProcs lists the command lines of the processes vmmsRunning counts.
func vmmProcs(root string) []string {
	var found []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, _ := os.ReadFile(p); strings.Contains(string(b), filepath.Join(root, "machines")) {
			found = append(found, p+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return found
}

// TestBuildInterrupted: Ctrl-C of `ferry build`, and a SIGKILL of the
// daemon, while a RUN runs in its builder VM, leave no image tagged and no
// builder VM running (the restarted daemon reaps the one the dead daemon
// left).
func TestBuildInterrupted(t *testing.T) {
	e := vmEnv(t)
	t.Cleanup(func() { // before vmEnv's cleanups stop what is left
		if t.Failed() {
			t.Logf("processes naming %s/machines: %q", e.root, vmmProcs(e.root))
		}
	})
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox:vm\nRUN echo step-$((40+2)) && sleep 600\n"})
	start := func() (*syncBuffer, func() error, func(os.Signal)) {
		cmd := e.command([]string{"DOCKER_CONFIG=" + e.dockerCfg}, "build", "-t", "interrupted:1", dir)
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		e.eventually("the RUN to start in its VM", 3*time.Minute, func() bool { return strings.Contains(out.String(), "step-42") })
		return out, cmd.Wait, func(s os.Signal) { _ = cmd.Process.Signal(s) }
	}
	gone := func(what string) {
		// A minute is enough alone; CI's full suite at load 7 took longer once.
		e.eventually(what, 3*time.Minute, func() bool {
			return vmmsRunning(e.root) == 0 && !strings.Contains(e.ok("ps", "-a", "--all-apps"), "build-")
		})
		if r := e.run(nil, "image", "inspect", "interrupted:1"); r.code == 0 {
			t.Errorf("%s: the interrupted build tagged its image", what)
		}
	}

	out, wait, signal := start()
	signal(syscall.SIGINT)
	if err := wait(); err == nil {
		t.Errorf("an interrupted build exited 0:\n%s", out)
	}
	gone("Ctrl-C: the builder VM to go")

	out, wait, _ = start()
	if vmmsRunning(e.root) == 0 {
		t.Fatal("no builder VMM while the RUN runs")
	}
	e.killDaemon()
	if err := wait(); err == nil {
		t.Errorf("a build whose daemon died exited 0:\n%s", out)
	}
	e.startDaemon()
	gone("daemon SIGKILL: the restarted daemon to reap the builder VM")
}
