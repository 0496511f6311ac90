package cli

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// stamped is one line of `logs -t`: its time and its text.
type stamped struct {
	at   time.Time
	text string
}

// parseStamped splits `logs -t` output into its lines' times and texts.
func parseStamped(t *testing.T, out string) []stamped {
	t.Helper()
	var lines []stamped
	for _, l := range strings.SplitAfter(out, "\n") {
		if l == "" {
			continue
		}
		ts, text, ok := strings.Cut(l, " ")
		at, err := time.Parse(time.RFC3339Nano, ts)
		if !ok || err != nil {
			t.Fatalf("line %q does not start with a time: %v", l, err)
		}
		lines = append(lines, stamped{at, text})
	}
	return lines
}

func texts(lines []stamped) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.text)
	}
	return b.String()
}

// TestLogStreams boots a machine through the docker CLI (restored from a
// template: the run config that asks for console records comes over the
// control channel) and reads its output back: stdout and stderr stay
// apart from the guest to the user (docker run without -t, docker logs,
// ferry logs, and ferry run of a cold-booted machine), each line has the
// time it was written, not the time it is read, --since and --until go by
// that time, and the times are the same after the daemon restarted; an
// exec's streams stay apart as well.
func TestLogStreams(t *testing.T) {
	e := vmEnv(t, "--warm-starts")
	t.Parallel()
	docker := prereq.Tool(t, "docker")
	denv := []string{"DOCKER_HOST=unix://" + filepath.Join(filepath.Dir(e.sock), "docker.sock"), "DOCKER_CONFIG=" + t.TempDir()}
	dockerRun := func(args ...string) result {
		t.Helper()
		c := exec.Command(docker, args...)
		c.Env = append(os.Environ(), denv...)
		var out, errb bytes.Buffer
		c.Stdout, c.Stderr = &out, &errb
		err := c.Run()
		r := result{stdout: out.String(), stderr: errb.String()}
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			r.code = ee.ExitCode()
		case err != nil:
			t.Fatalf("docker %v: %v", args, err)
		}
		return r
	}
	dockerOK := func(args ...string) result {
		t.Helper()
		r := dockerRun(args...)
		if r.code != 0 {
			t.Fatalf("docker %s: %s\ndaemon log:\n%s", strings.Join(args, " "), r, e.daemonLog)
		}
		return r
	}

	// docker run without -t: what the CLI prints on each of its streams
	// (`2>/dev/null` leaves stdout's lines only, `>/dev/null` stderr's).
	const script = "echo out; echo err >&2; sleep 2; echo late; echo late-err >&2; exit 3"
	r := dockerRun("run", "--name", "streams", "busybox:vm", "sh", "-c", script)
	if r.code != 3 || r.stdout != "out\nlate\n" || r.stderr != "err\nlate-err\n" {
		t.Fatalf("docker run: %s\nwant exit 3, stdout %q, stderr %q", r, "out\nlate\n", "err\nlate-err\n")
	}
	if m := e.inspect("streams"); !m.Warm {
		t.Errorf("the docker run machine was not restored from a template: %+v", m.Events)
	}
	if r := dockerOK("logs", "streams"); r.stdout != "out\nlate\n" || r.stderr != "err\nlate-err\n" {
		t.Fatalf("docker logs: %s", r)
	}
	// (ferry run's stderr may start with its own warnings.)
	if r := e.run(nil, "run", "--rm", "--cold", "busybox:vm", "sh", "-c", "echo cold out; echo cold err >&2"); r.code != 0 || r.stdout != "cold out\n" || (r.stderr != "cold err\n" && !strings.HasSuffix(r.stderr, "\ncold err\n")) {
		t.Fatalf("ferry run --cold: %s", r)
	}

	// -t: the times the lines were written, the same however often read.
	first := dockerOK("logs", "-t", "streams")
	time.Sleep(1100 * time.Millisecond)
	again := dockerOK("logs", "-t", "streams")
	if again.stdout != first.stdout || again.stderr != first.stderr {
		t.Fatalf("docker logs -t read again later differs:\n%s\nthen\n%s", first, again)
	}
	out, errs := parseStamped(t, first.stdout), parseStamped(t, first.stderr)
	if texts(out) != "out\nlate\n" || texts(errs) != "err\nlate-err\n" {
		t.Fatalf("docker logs -t: %s", first)
	}
	if gap := out[1].at.Sub(out[0].at); gap < 1500*time.Millisecond {
		t.Fatalf("\"late\" stamped %v after \"out\", which the guest wrote 2s before it: stamps are not write times\n%s", gap, first)
	}
	mid := out[0].at.Add(time.Second).Format(time.RFC3339Nano)
	if r := dockerOK("logs", "--since", mid, "streams"); r.stdout != "late\n" || r.stderr != "late-err\n" {
		t.Fatalf("docker logs --since %s: %s", mid, r)
	}
	if r := dockerOK("logs", "--until", mid, "streams"); r.stdout != "out\n" || r.stderr != "err\n" {
		t.Fatalf("docker logs --until %s: %s", mid, r)
	}

	// ferry logs: the same lines and times, stderr's on stderr.
	fr := e.run(nil, "logs", "--timestamps", "streams")
	if fr.code != 0 || fr.stdout != first.stdout || fr.stderr != first.stderr {
		t.Fatalf("ferry logs --timestamps: %s\nwant what docker logs -t printed:\n%s", fr, first)
	}
	if fr := e.run(nil, "logs", "--since", mid, "streams"); fr.code != 0 || fr.stdout != "late\n" || fr.stderr != "late-err\n" {
		t.Fatalf("ferry logs --since %s: %s", mid, fr)
	}

	// The times are the log's: a restarted daemon shows the same.
	e.killDaemon()
	e.startDaemon()
	if r := dockerOK("logs", "-t", "streams"); r.stdout != first.stdout || r.stderr != first.stderr {
		t.Fatalf("docker logs -t after a daemon restart:\n%s\nbefore:\n%s", r, first)
	}

	// exec has stdout and stderr apart too (streams of the control
	// channel, not the console).
	dockerOK("run", "-d", "--name", "sleeper", "busybox:vm", "sleep", "1000")
	e.eventually("the machine answers exec", 3*time.Minute, func() bool { return dockerRun("exec", "sleeper", "true").code == 0 })
	if r := dockerRun("exec", "sleeper", "sh", "-c", "echo out; echo err >&2; exit 5"); r.code != 5 || r.stdout != "out\n" || r.stderr != "err\n" {
		t.Fatalf("docker exec: %s", r)
	}
}
