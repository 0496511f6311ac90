package compose

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
)

const healthy = `
services:
  web:
    image: web
    depends_on: {db: {condition: service_healthy}}
  db:
    image: postgres
    healthcheck:
      test: ["CMD-SHELL", "pg_isready"]
      interval: 2s
      retries: 7
      start_period: 10s
`

func TestHealthcheckConfig(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "compose.yaml", healthy+"  off:\n    image: x\n    healthcheck: {disable: true}\n")
	p := load(t, dir, Options{ProjectName: "h"})
	h := p.Services["db"].Config.Healthcheck
	if h == nil || !slices.Equal(h.Test, []string{"CMD-SHELL", "pg_isready"}) || h.Interval != 2*time.Second || h.Retries != 7 || h.StartPeriod != 10*time.Second {
		t.Fatalf("db healthcheck %+v", h)
	}
	if !p.Services["off"].Config.Healthcheck.Disabled() {
		t.Errorf("disable: true: %+v", p.Services["off"].Config.Healthcheck)
	}
	if p.Services["web"].Config.Healthcheck != nil {
		t.Errorf("web has no healthcheck: %+v", p.Services["web"].Config.Healthcheck)
	}
}

// web waits for db to be healthy: it is created only after db reported
// healthy, not while db is still starting.
func TestServiceHealthyOrdering(t *testing.T) {
	healthPoll = time.Millisecond
	dir := t.TempDir()
	write(t, dir, "compose.yaml", healthy)
	f := newFake()
	var webCreatedAt int
	f.health = func(name string, n int) *types.Health {
		if name != "h-db-1" {
			return nil
		}
		if n < 5 {
			return &types.Health{Status: types.HealthStarting}
		}
		return &types.Health{Status: types.HealthHealthy}
	}
	p := load(t, dir, Options{ProjectName: "h"})
	if err := Up(context.Background(), f, p, UpOptions{}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.created, []string{"h-db-1", "h-web-1"}) {
		t.Fatalf("created %v", f.created)
	}
	webCreatedAt = f.gets["h-db-1"]
	if webCreatedAt < 5 {
		t.Fatalf("db was asked %d times: web did not wait for healthy", webCreatedAt)
	}
}

func TestUnhealthyDependency(t *testing.T) {
	healthPoll = time.Millisecond
	dir := t.TempDir()
	write(t, dir, "compose.yaml", healthy)
	f := newFake()
	f.health = func(name string, n int) *types.Health {
		return &types.Health{Status: types.HealthUnhealthy, FailingStreak: 3, Log: []types.HealthResult{{ExitCode: 2, Output: "no response\n"}}}
	}
	p := load(t, dir, Options{ProjectName: "h"})
	err := Up(context.Background(), f, p, UpOptions{})
	if err == nil || !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "h-db-1 is unhealthy") || !strings.Contains(err.Error(), "no response") {
		t.Fatalf("err %v: want db unhealthy with its last output", err)
	}
	if slices.Contains(f.created, "h-web-1") {
		t.Error("web was created although db is unhealthy")
	}
}

func TestServiceHealthyWithoutHealthcheck(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "compose.yaml", "services:\n  a:\n    image: x\n    depends_on: {b: {condition: service_healthy}}\n  b:\n    image: x\n")
	f := newFake()
	f.health = func(string, int) *types.Health { return nil }
	err := Up(context.Background(), f, load(t, dir, Options{ProjectName: "n"}), UpOptions{})
	if err == nil || !strings.Contains(err.Error(), "no healthcheck") {
		t.Fatalf("err %v", err)
	}
}

func TestUpWait(t *testing.T) {
	healthPoll = time.Millisecond
	dir := t.TempDir()
	write(t, dir, "compose.yaml", "services:\n  a:\n    image: x\n    healthcheck: {test: [CMD, 'true']}\n  b:\n    image: x\n")
	f := newFake()
	f.health = func(name string, n int) *types.Health {
		if name != "w-a-1" {
			return nil
		}
		if n < 3 {
			return &types.Health{Status: types.HealthStarting}
		}
		return &types.Health{Status: types.HealthUnhealthy, Log: []types.HealthResult{{ExitCode: 1, Output: "down"}}}
	}
	p := load(t, dir, Options{ProjectName: "w"})
	if err := Up(context.Background(), f, p, UpOptions{}); err != nil {
		t.Fatalf("up without --wait: %v", err)
	}
	err := Up(context.Background(), f, p, UpOptions{Wait: true})
	if err == nil || !strings.Contains(err.Error(), "service a") || !strings.Contains(err.Error(), `"down"`) || strings.Contains(err.Error(), "service b") {
		t.Fatalf("up --wait: %v", err)
	}
}

func TestSecretsAndConfigs(t *testing.T) {
	dir := t.TempDir()
	state := t.TempDir()
	t.Setenv("FERRY_COMPOSE_STATE", state)
	t.Setenv("API_TOKEN", "t0k3n")
	write(t, dir, "pw.txt", "hunter2")
	write(t, dir, "compose.yaml", `
services:
  app:
    image: x
    secrets: [pw, {source: token, target: api/token}]
    configs: [{source: conf, target: /etc/app/app.conf}]
secrets:
  pw: {file: ./pw.txt}
  token: {environment: API_TOKEN}
configs:
  conf: {content: "listen 80"}
`)
	p := load(t, dir, Options{ProjectName: "s"})
	app := p.Services["app"]
	var binds []types.Mount
	for _, m := range app.Config.Mounts {
		if m.Type == types.MountBind {
			binds = append(binds, m)
		}
	}
	guest := map[string]string{}
	for _, m := range binds {
		if !m.ReadOnly || !strings.HasPrefix(m.Source, filepath.Join(state, "s", "app")) {
			t.Errorf("mount %+v: want read-only under the stage dir", m)
		}
		guest[m.Path] = m.Source
	}
	if len(binds) != 3 || guest["/run/secrets"] == "" || guest["/run/secrets/api"] == "" || guest["/etc/app"] == "" {
		t.Fatalf("mounts %+v", binds)
	}
	f := newFake()
	if err := Up(context.Background(), f, p, UpOptions{}); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		filepath.Join(guest["/run/secrets"], "pw"):        "hunter2",
		filepath.Join(guest["/run/secrets/api"], "token"): "t0k3n",
		filepath.Join(guest["/etc/app"], "app.conf"):      "listen 80",
	} {
		if b, err := os.ReadFile(file); err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q", file, b, err, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(guest["/run/secrets"], "api")); err != nil || !fi.IsDir() {
		t.Errorf("/run/secrets has no mount point for /run/secrets/api: %v", err)
	}
	// A changed secret changes the hash: the service is recreated.
	write(t, dir, "pw.txt", "hunter3")
	if p2 := load(t, dir, Options{ProjectName: "s"}); p2.Services["app"].Hash == app.Hash {
		t.Error("a changed secret file left the config hash as it was")
	}
	if err := Down(context.Background(), f, "s", p, DownOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(state, "s")); !os.IsNotExist(err) {
		t.Errorf("down left the staged secrets: %v", err)
	}
}
