package cli

import (
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// TestRunInteractiveTTY drives `ferry run -it` and `ferry attach` from a
// pseudo-terminal against real VMs: typed input reaches the guest shell
// through its pty, Ctrl-C interrupts the foreground command in the guest,
// the terminal size is the local one, and the shell's exit status is the
// command's; -i alone pipes stdin.
func TestRunInteractiveTTY(t *testing.T) {
	e := vmEnv(t)
	t.Parallel()

	start := time.Now()
	sh := startOnPty(t, e.command(nil, "run", "-it", "--rm", "busybox:vm", "sh"))
	sh.await(e, "the shell's prompt", "# ")
	t.Logf("run -it: prompt after %s", time.Since(start).Round(time.Millisecond))
	sh.send("stty size; sleep 1000\r")
	time.Sleep(time.Second)
	sh.send("\x03") // Ctrl-C: SIGINT to sleep in the guest, not to ferry
	sh.send("echo $((6*7))\r")
	sh.await(e, "the result", "\n42")
	if !strings.Contains(sh.out.String(), "30 90") {
		t.Errorf("guest terminal size is not the local 30x90:\n%q", sh.out.String())
	}
	sh.send("exit 3\r")
	if code := sh.wait(t); code != 3 {
		t.Fatalf("run -it exit status %d, want 3\n%q\ndaemon:\n%s", code, sh.out.String(), e.daemonLog)
	}
	if out := e.ok("ps", "-a", "-q"); out != "" {
		t.Fatalf("--rm left machines: %q", out)
	}

	// -i without -t: stdin is a pipe to the entrypoint, stdout and stderr
	// stay apart.
	start = time.Now()
	r := e.run(strings.NewReader("one\ntwo\n"), "run", "-i", "--rm", "busybox:vm", "sh", "-c", "wc -l; echo bye >&2; exit 5")
	if r.code != 5 || strings.TrimSpace(r.stdout) != "2" || !strings.Contains(r.stderr, "bye") {
		t.Fatalf("run -i: %s", r)
	}
	t.Logf("run -i --rm (boot, attach, exit, destroy): %s", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	if r := e.run(nil, "run", "--rm", "busybox:vm", "sh", "-c", "wc -l </dev/null; exit 5"); r.code != 5 {
		t.Fatalf("run: %s", r)
	}
	t.Logf("run --rm, same command without -i: %s", time.Since(start).Round(time.Millisecond))

	if r := e.run(strings.NewReader(""), "run", "-i", "--rm", "busybox:vm", "no-such-command"); r.code != 127 {
		t.Fatalf("run -i of a missing command: %s", r)
	}

	// run -d -it waits for `ferry attach`; the session also goes to logs.
	e.ok("run", "-d", "-it", "--name", "att", "busybox:vm", "sh")
	at := startOnPty(t, e.command(nil, "attach", "att"))
	at.send("echo hello-$((1+1))\r") // typed ahead: the pty buffers it
	at.await(e, "the attached shell's output", "\nhello-2")
	at.send("exit 4\r")
	if code := at.wait(t); code != 4 {
		t.Fatalf("attach exit status %d, want 4\n%q", code, at.out.String())
	}
	e.eventually("the machine to stop", time.Minute, func() bool {
		m := e.inspect("att")
		return m.LastExit != nil && m.LastExit.ExitCode == 4
	})
	if logs := e.ok("logs", "att"); !strings.Contains(logs, "hello-2") {
		t.Fatalf("logs lack the attached session:\n%q", logs)
	}
	e.ok("rm", "att")
	assertNoLeaks(t, e)
}

// ptyCmd is a command running on a pseudo-terminal.
type ptyCmd struct {
	t    *testing.T
	cmd  *exec.Cmd
	tty  io.ReadWriteCloser
	out  *syncBuffer
	done chan struct{}
}

func startOnPty(t *testing.T, cmd *exec.Cmd) *ptyCmd {
	t.Helper()
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 30, Cols: 90})
	if err != nil {
		prereq.PTY(t)
		t.Fatalf("start on a pty: %v", err)
	}
	p := &ptyCmd{t: t, cmd: cmd, tty: tty, out: &syncBuffer{}, done: make(chan struct{})}
	go func() { _, _ = io.Copy(p.out, tty); close(p.done) }() // EIO once the child exits
	t.Cleanup(func() {
		tty.Close()
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return p
}

func (p *ptyCmd) send(s string) {
	if _, err := io.WriteString(p.tty, s); err != nil {
		p.t.Fatalf("write to the terminal: %v", err)
	}
}

func (p *ptyCmd) await(e *vmFerry, what, s string) {
	p.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(p.out.String(), s) {
		if time.Now().After(deadline) {
			p.t.Fatalf("timed out waiting for %s (%q) on the terminal:\n%q\nmachines:\n%s\ndaemon:\n%s", what, s, p.out.String(), machinesReport(e), e.daemonLog)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wait returns the exit status, at most two minutes on.
func (p *ptyCmd) wait(t *testing.T) int {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- p.cmd.Wait() }()
	select {
	case err := <-errc:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(2 * time.Minute):
		t.Fatalf("command did not exit:\n%q", p.out.String())
		return -1
	}
}

// machinesReport is every machine's inspect output and console log, for
// failure messages.
func machinesReport(e *vmFerry) string {
	var b strings.Builder
	for _, id := range strings.Fields(e.run(nil, "ps", "-a", "-q").stdout) {
		b.WriteString(e.run(nil, "inspect", id).stdout)
		b.WriteString("logs:\n" + e.run(nil, "logs", id).stdout + "\n")
	}
	return b.String()
}
