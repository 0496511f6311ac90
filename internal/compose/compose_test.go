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

	"github.com/ferryvm/ferry/internal/errdefs"
)

func write(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

const app = `
services:
  web:
    image: web:${WEB_TAG}
    ports: ["8080:80"]
    depends_on: [db, cache]
    environment: {DB: db}
    deploy: {resources: {limits: {cpus: "1.5", memory: 300M}}}
  db:
    image: postgres
    volumes: [data:/var/lib/postgresql/data]
  cache:
    image: redis
  debug:
    image: busybox
    profiles: [debug]
volumes:
  data: {}
`

func load(t *testing.T, dir string, o Options) *Plan {
	t.Helper()
	o.WorkingDir = dir
	p, err := Load(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := NewPlan(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func TestLoadAndPlan(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "compose.yaml", app)
	write(t, dir, ".env", "WEB_TAG=v2\n")
	for _, k := range []string{"COMPOSE_PROJECT_NAME", "COMPOSE_FILE", "COMPOSE_PROFILES", "WEB_TAG"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	p := load(t, dir, Options{ProjectName: "shop"})
	if got := slices.Sorted(mapKeys(p.Services)); !slices.Equal(got, []string{"cache", "db", "web"}) {
		t.Fatalf("services %v: the debug profile is off", got)
	}
	web := p.Services["web"]
	if web.Config.Image != "web:v2" {
		t.Errorf(".env interpolation: image %q", web.Config.Image)
	}
	if web.Config.Guest.CPUs != 2 || web.Config.Guest.MemoryMB != 300 {
		t.Errorf("limits: %+v", web.Config.Guest)
	}
	if len(web.Config.Services) != 1 || web.Config.Services[0].InternalPort != 80 || web.Config.Services[0].Ports[0].Port != 8080 {
		t.Errorf("ports: %+v", web.Config.Services)
	}
	if len(web.Config.Networks) != 1 || web.Config.Networks[0].Network != "shop_default" || web.Config.Networks[0].Aliases[0] != "web" {
		t.Errorf("networks: %+v", web.Config.Networks)
	}
	if m := p.Services["db"].Config.Mounts; len(m) != 1 || m[0].Volume != "shop_data" {
		t.Errorf("db mounts: %+v", m)
	}
	req := p.Request(web, 2)
	if req.Name != "shop-web-2" || req.Config.Metadata[LabelProject] != "shop" || req.Config.Metadata[LabelConfigHash] != web.Hash {
		t.Errorf("request %s %v", req.Name, req.Config.Metadata)
	}
	order, err := p.Order()
	if err != nil || slices.Index(order, "web") < slices.Index(order, "db") || slices.Index(order, "web") < slices.Index(order, "cache") {
		t.Errorf("order %v %v", order, err)
	}

	withDebug := load(t, dir, Options{ProjectName: "shop", Profiles: []string{"debug"}})
	if _, ok := withDebug.Services["debug"]; !ok {
		t.Error("--profile debug: no debug service")
	}
}

func TestSeveralFiles(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "compose.yaml", app)
	write(t, dir, "override.yaml", "services:\n  web:\n    image: web:override\n    deploy: {replicas: 3}\n")
	t.Setenv("WEB_TAG", "x")
	p := load(t, dir, Options{ProjectName: "shop", Files: []string{filepath.Join(dir, "compose.yaml"), filepath.Join(dir, "override.yaml")}})
	if w := p.Services["web"]; w.Config.Image != "web:override" || w.Scale != 3 {
		t.Errorf("merged web: image %s scale %d", w.Config.Image, w.Scale)
	}
	one := load(t, dir, Options{ProjectName: "shop"})
	if one.Services["db"].Hash != p.Services["db"].Hash || one.Services["web"].Hash == p.Services["web"].Hash {
		t.Error("config hash: only the changed service's hash changes")
	}
}

func TestBadInput(t *testing.T) {
	for name, body := range map[string]string{
		"unknown dependency": "services:\n  a:\n    image: x\n    depends_on: [nope]\n",
		"cycle":              "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n",
		"yaml":               "services:\n  a:\n    image: [\n",
		"no image":           "services:\n  a:\n    command: [true]\n",
		"secret in /":        "services:\n  a:\n    image: x\n    configs: [c]\nconfigs:\n  c: {content: hi}\n",
		"secret undeclared":  "services:\n  a:\n    image: x\n    secrets: [s]\n",
		"healthcheck test":   "services:\n  a:\n    image: x\n    healthcheck: {test: [BOGUS, x]}\n",
		"port range":         "services:\n  a:\n    image: x\n    ports: [\"8000-8001:80\"]\n",
		"stop signal":        "services:\n  a:\n    image: x\n    stop_signal: SIGFOO\n",
		"pull policy":        "services:\n  a:\n    image: x\n    pull_policy: daily\n",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, "compose.yaml", body)
			proj, err := Load(context.Background(), Options{WorkingDir: dir, ProjectName: "bad"})
			if err == nil {
				_, err = NewPlan(proj, nil)
			}
			if err == nil || !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("err %v, want an invalid-argument error", err)
			}
			t.Log(err)
		})
	}
}

func TestUpRecreateScaleDown(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "compose.yaml", app)
	t.Setenv("WEB_TAG", "v1")
	ctx := context.Background()
	f := newFake()
	f.delay = 50 * time.Millisecond
	p := load(t, dir, Options{ProjectName: "shop"})
	if err := Up(ctx, f, p, UpOptions{}); err != nil {
		t.Fatal(err)
	}
	if slices.Index(f.created, "shop-web-1") != 2 {
		t.Fatalf("create order %v: web must come after db and cache", f.created)
	}
	if len(f.nets) != 1 {
		t.Fatalf("networks %v", f.nets)
	}
	// A second up with nothing changed touches nothing.
	f.created = nil
	if err := Up(ctx, f, p, UpOptions{}); err != nil || len(f.created) != 0 || len(f.removed) != 0 {
		t.Fatalf("second up: created %v removed %v err %v", f.created, f.removed, err)
	}
	// A changed web is recreated, alone.
	t.Setenv("WEB_TAG", "v2")
	p2 := load(t, dir, Options{ProjectName: "shop"})
	if err := Up(ctx, f, p2, UpOptions{}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.created, []string{"shop-web-1"}) || !slices.Equal(f.removed, []string{"shop-web-1"}) {
		t.Fatalf("recreate: created %v removed %v", f.created, f.removed)
	}
	// Scale cache to 3, then back to 1.
	p3, _ := Load(ctx, Options{WorkingDir: dir, ProjectName: "shop"})
	scaled, err := NewPlan(p3, map[string]int{"cache": 3})
	if err != nil {
		t.Fatal(err)
	}
	f.created, f.removed = nil, nil
	if err := Up(ctx, f, scaled, UpOptions{}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(f.created)
	if !slices.Equal(f.created, []string{"shop-cache-2", "shop-cache-3"}) {
		t.Fatalf("scale up created %v", f.created)
	}
	f.removed = nil
	if err := Up(ctx, f, p2, UpOptions{}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(f.removed)
	if !slices.Equal(f.removed, []string{"shop-cache-2", "shop-cache-3"}) {
		t.Fatalf("scale down removed %v", f.removed)
	}
	if err := Down(ctx, f, "shop", p2, DownOptions{Volumes: true}); err != nil {
		t.Fatal(err)
	}
	if len(f.machines) != 0 || len(f.nets) != 0 || !slices.Equal(f.volumesRemoved, []string{"shop_data"}) {
		t.Fatalf("leftovers after down -v: machines %v nets %v volumes removed %v", f.machines, f.nets, f.volumesRemoved)
	}
}

func TestUpParallel(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "compose.yaml", "services:\n  a: {image: x}\n  b: {image: x}\n  c: {image: x}\n")
	f := newFake()
	f.gate = make(chan struct{})
	p := load(t, dir, Options{ProjectName: "par"})
	// Every create blocks until three are in flight at once: sequential
	// starts would never get there.
	go func() {
		for f.inFlight.Load() < 3 {
			time.Sleep(time.Millisecond)
		}
		close(f.gate)
	}()
	if err := Up(context.Background(), f, p, UpOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(f.created[0], "par-") {
		t.Fatal(f.created)
	}
}

// TestUpWaitsForBootDownStopsFirst: up returns once each replica's init
// takes exec requests (so `up -d; exec` works), and down stops a machine
// (its guest flushes its volumes) before destroying it.
func TestUpWaitsForBootDownStopsFirst(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "compose.yaml", "services:\n  a: {image: x}\n")
	f := newFake()
	p := load(t, dir, Options{ProjectName: "boot"})
	if err := Up(context.Background(), f, p, UpOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(f.execs) != 0 || !slices.Equal(f.events, []string{"booted boot-a-1"}) {
		t.Fatalf("up did not wait for boot through the daemon: execs %v events %v", f.execs, f.events)
	}
	if err := Down(context.Background(), f, "boot", p, DownOptions{}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.events[1:], []string{"stop boot-a-1", "destroy boot-a-1"}) {
		t.Fatalf("down: %v, want a stop before the destroy", f.events[1:])
	}
}

// TestUpBootTimeout: a replica whose init never takes exec requests fails
// up with a timeout naming it.
func TestUpBootTimeout(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "compose.yaml", "services:\n  a: {image: x}\n")
	f := newFake()
	f.neverBoots = map[string]bool{"slow-a-1": true}
	p := load(t, dir, Options{ProjectName: "slow"})
	err := Up(context.Background(), f, p, UpOptions{})
	if !errors.Is(err, errdefs.ErrTimeout) || !strings.Contains(err.Error(), "slow-a-1: not booted after") {
		t.Fatalf("up of a replica that never boots: %v, want a timeout naming slow-a-1", err)
	}
}
