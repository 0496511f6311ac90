package dockerapi_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

const composeFile = `services:
  web:
    image: busybox:vm
    command: ["httpd", "-f", "-p", "80", "-h", "/etc"]
    ports: ["18082:80"]
    volumes: ["www:/www"]
    labels:
      tier: front
    healthcheck:
      test: ["CMD-SHELL", "wget -qO- http://127.0.0.1/hostname"]
      interval: 1s
      start_period: 5m
      start_interval: 1s
  client:
    image: busybox:vm
    command: ["sh", "-c", "while true; do wget -qO- http://web/hostname && echo fetched; sleep 1; done"]
    depends_on:
      web:
        condition: service_healthy
volumes:
  www: {}
`

// TestDockerCompose brings a two-service project up and down with docker
// compose v2 (built from github.com/docker/compose/v5 by scripts/deps.sh):
// a project network with service DNS names, published ports, logs, exec,
// and a healthcheck that client's depends_on service_healthy and up --wait
// wait for (through inspect's State.Health).
func TestDockerCompose(t *testing.T) {
	e := newDockerEnv(t)
	plugin := prereq.Tool(t, "docker-compose")
	prereq.Tool(t, "curl")
	prereq.Tool(t, "cryptsetup") // the project's volume is LUKS2 by default
	cfgDir := strings.TrimPrefix(e.env[1], "DOCKER_CONFIG=")
	if err := os.MkdirAll(filepath.Join(cfgDir, "cli-plugins"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(plugin, filepath.Join(cfgDir, "cli-plugins", "docker-compose")); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(e.dir, "proj")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(composeFile), 0o644); err != nil {
		t.Fatal(err)
	}
	compose := func(args ...string) string {
		t.Helper()
		return e.ok(append([]string{"compose", "--project-directory", dir, "-p", "proj"}, args...)...)
	}
	compose("up", "-d", "--wait")
	ps := compose("ps", "--format", "{{.Service}} {{.State}} {{.Health}}")
	if !strings.Contains(ps, "web running healthy") || !strings.Contains(ps, "client running") {
		t.Fatalf("compose ps = %q, want both services running, web healthy", ps)
	}
	// The client reaches web by its service name on the project network.
	eventually(t, "client fetches from web by name", func() error {
		if out := compose("logs", "client"); !strings.Contains(out, "fetched") || !strings.Contains(out, "proj-web-1") {
			return fmt.Errorf("client logs %q", out)
		}
		return nil
	})
	if out := compose("exec", "-T", "web", "sh", "-c", "echo exec-ok > /www/f && cat /www/f"); strings.TrimSpace(out) != "exec-ok" {
		t.Fatalf("compose exec = %q", out)
	}
	if out := e.ok("ps", "--filter", "label=com.docker.compose.project=proj", "--format", "{{.Names}}"); !strings.Contains(out, "proj-web-1") {
		t.Fatalf("compose's labels not kept: ps by project label = %q", out)
	}
	eventually(t, "published port", func() error {
		out, err := e.inNetns("curl", "-sf", "--max-time", "5", "http://127.0.0.1:18082/hostname")
		if err != nil {
			return fmt.Errorf("curl: %v: %s", err, out)
		}
		return nil
	})
	if out := e.ok("volume", "ls", "-q"); !strings.Contains(out, "proj_www") {
		t.Fatalf("project volume not listed: %q", out)
	}
	compose("down", "-v")
	if out := e.ok("ps", "-aq"); out != "" {
		t.Fatalf("containers left after down: %q", out)
	}
	if out := e.ok("network", "ls", "--format", "{{.Name}}"); strings.Contains(out, "proj_default") {
		t.Fatalf("project network left after down: %q", out)
	}
	if out := e.ok("volume", "ls", "-q"); strings.Contains(out, "proj_www") {
		t.Fatalf("project volume left after down -v: %q", out)
	}
}
