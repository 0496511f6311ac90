package cli

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
)

// The test app from locally built images: db's image has a
// HEALTHCHECK that passes only after a while, cache's Dockerfile is inline
// (its RUN in a builder VM), web (built with a build arg) fetches from db
// and cache by name once, at its start: it can only print db's page if
// compose waited for db to be healthy.
var builtApp = map[string]string{
	"compose.yaml": `
name: built
services:
  db:
    build: ./db
  cache:
    build:
      context: .
      dockerfile_inline: |
        FROM busybox:vm
        RUN mkdir -p /www && echo cache-hit > /www/index.html
        CMD ["httpd", "-f", "-p", "80", "-h", "/www"]
  web:
    build:
      context: ./web
      args: {GREETING: built-arg}
    depends_on:
      db: {condition: service_healthy}
      cache: {condition: service_started}
`,
	"db/Dockerfile": `FROM busybox:vm
COPY index.html /www/index.html
HEALTHCHECK --interval=1s --retries=30 CMD test -f /tmp/ready
CMD ["sh", "-c", "sleep 3; touch /tmp/ready; exec httpd -f -p 80 -h /www"]
`,
	"db/index.html": "db-ready\n",
	"web/Dockerfile": `FROM busybox:vm
ARG GREETING
ENV GREETING=$GREETING
CMD ["sh", "-c", "wget -qO- http://db/ || echo db-unreachable; wget -qO- http://cache/ || echo cache-unreachable; echo web-$GREETING-done; exec sleep 1000"]
`,
}

// TestComposeBuildAttachedRun: an attached `up` builds the missing
// images (named PROJECT-SERVICE), starts web only once db is healthy,
// shows both machines' output prefixed with SERVICE-N, `run --rm` runs a
// one-off of web that reaches db and leaves nothing, and Ctrl-C stops the
// project's machines with status 130.
func TestComposeBuildAttachedRun(t *testing.T) {
	e := vmEnv(t)
	t.Parallel()
	dir := t.TempDir()
	writeFiles(t, dir, builtApp)
	file := filepath.Join(dir, "compose.yaml")
	t.Cleanup(func() { e.run(nil, "compose", "-f", file, "down", "-v") })

	up := e.command(nil, "compose", "-f", file, "up")
	var out, errOut syncBuffer
	up.Stdout, up.Stderr = &out, &errOut
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- up.Wait() }()
	t.Cleanup(func() { _ = up.Process.Kill() })
	e.eventually("attached up shows web's output", 5*time.Minute, func() bool {
		select {
		case err := <-exited:
			t.Fatalf("attached up exited early: %v\nstdout:\n%s\nstderr:\n%s", err, &out, &errOut)
		default:
		}
		return strings.Contains(out.String(), "web-1    | web-built-arg-done\n")
	})
	o := out.String()
	if !strings.Contains(o, "Attaching to cache-1, db-1, web-1\n") || !strings.Contains(o, "web-1    | db-ready\n") || !strings.Contains(o, "web-1    | cache-hit\n") {
		t.Errorf("attached output (web must start after db is healthy, lines prefixed SERVICE-N):\n%s\nstderr:\n%s", o, &errOut)
	}
	if logs := e.ok("compose", "-f", file, "logs", "--tail", "1", "web"); logs != "web-1  | web-built-arg-done\n" {
		t.Errorf("compose logs --tail 1 web: %q", logs)
	}
	// -t: the time each line was written, after the prefix.
	if logs := e.ok("compose", "-f", file, "logs", "-t", "--tail", "1", "web"); !regexp.MustCompile(`^web-1  \| 20\d\d-\d\d-\d\dT[0-9:.]+Z web-built-arg-done\n$`).MatchString(logs) {
		t.Errorf("compose logs -t --tail 1 web: %q", logs)
	}
	// logs -f follows: it prints the last line and keeps running.
	follow := e.command(nil, "compose", "-f", file, "logs", "-f", "--tail", "1", "web")
	var fout syncBuffer
	follow.Stdout, follow.Stderr = &fout, &fout
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	followDone := make(chan struct{})
	go func() { _ = follow.Wait(); close(followDone) }()
	e.eventually("logs -f prints web's last line", time.Minute, func() bool { return fout.String() == "web-1  | web-built-arg-done\n" })
	select {
	case <-followDone:
		t.Errorf("logs -f exited while web runs: %s", &fout)
	case <-time.After(2 * time.Second):
	}
	_ = follow.Process.Kill()
	<-followDone
	if imgs := e.ok("images"); !strings.Contains(imgs, "built-db") || !strings.Contains(imgs, "built-web") || !strings.Contains(imgs, "built-cache") {
		t.Errorf("built images are not named PROJECT-SERVICE:\n%s", imgs)
	}

	r := e.run(nil, "compose", "-f", file, "run", "--rm", "web", "wget", "-qO-", "http://db/")
	if r.code != 0 || r.stdout != "db-ready\n" {
		t.Errorf("compose run --rm web wget http://db/: %s", r)
	}
	if r := e.run(nil, "compose", "-f", file, "run", "--rm", "web", "sh", "-c", "exit 4"); r.code != 4 {
		t.Errorf("compose run exit status: %s", r)
	}
	var ms []*types.Machine
	if err := json.Unmarshal([]byte(e.ok("compose", "-f", file, "ps", "-a", "--format", "json")), &ms); err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 {
		t.Errorf("after run --rm: %d machines, want cache-1, db-1 and web-1", len(ms))
	}

	if err := up.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if up.ProcessState.ExitCode() != 130 {
			t.Errorf("attached up after Ctrl-C: %v (want exit 130)\nstderr:\n%s", err, &errOut)
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("attached up did not stop after Ctrl-C\nstderr:\n%s", &errOut)
	}
	if err := json.Unmarshal([]byte(e.ok("compose", "-f", file, "ps", "-a", "--format", "json")), &ms); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.State != types.StateStopped {
			t.Errorf("after Ctrl-C %s is %s, want stopped", m.Name, m.State)
		}
	}
}
