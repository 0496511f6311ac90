package compose

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestForceRecreateNoDepsRemoveOrphans(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "compose.yaml", "services:\n  web: {image: x, depends_on: [db]}\n  db: {image: x}\n  old: {image: x}\n")
	ctx := context.Background()
	f := newFake()
	p := load(t, dir, Options{ProjectName: "fl"})
	if err := Up(ctx, f, p, UpOptions{}); err != nil {
		t.Fatal(err)
	}
	f.created, f.removed = nil, nil
	if err := Up(ctx, f, p, UpOptions{Services: []string{"web"}, ForceRecreate: true, NoDeps: true}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.created, []string{"fl-web-1"}) || !slices.Equal(f.removed, []string{"fl-web-1"}) {
		t.Errorf("--force-recreate --no-deps web: created %v removed %v", f.created, f.removed)
	}
	f.created, f.removed = nil, nil
	if err := Up(ctx, f, p, UpOptions{Services: []string{"web"}, ForceRecreate: true}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(f.created)
	if !slices.Equal(f.created, []string{"fl-db-1", "fl-web-1"}) {
		t.Errorf("--force-recreate web (with its dependency): created %v", f.created)
	}

	// old leaves the file: its machine is an orphan, kept until asked.
	write(t, dir, "compose.yaml", "services:\n  web: {image: x, depends_on: [db]}\n  db: {image: x}\n")
	p2 := load(t, dir, Options{ProjectName: "fl"})
	f.removed = nil
	if err := Up(ctx, f, p2, UpOptions{}); err != nil || len(f.removed) != 0 {
		t.Fatalf("up without --remove-orphans removed %v (%v)", f.removed, err)
	}
	if err := Down(ctx, f, "fl", p2, DownOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(f.machines) != 1 || len(f.nets) != 1 {
		t.Errorf("down without --remove-orphans: machines %v nets %v (the orphan and the network it is on stay)", f.machines, f.nets)
	}
	if err := Up(ctx, f, p2, UpOptions{RemoveOrphans: true}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(f.removed, "fl-old-1") {
		t.Errorf("up --remove-orphans: removed %v", f.removed)
	}
	if err := Down(ctx, f, "fl", p2, DownOptions{RemoveOrphans: true}); err != nil || len(f.machines) != 0 {
		t.Errorf("down --remove-orphans: machines %v %v", f.machines, err)
	}
}

func TestDependsOnCompletedRequiredRestart(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "compose.yaml", `
services:
  migrate: {image: x}
  cache: {image: x}
  web:
    image: x
    depends_on:
      migrate: {condition: service_completed_successfully}
      cache: {condition: service_started, required: false, restart: true}
`)
	ctx := context.Background()
	f := newFake()
	f.exitCodes = map[string]int{"d-migrate-1": 3}
	f.failCreate = map[string]bool{"d-cache-1": true}
	p := load(t, dir, Options{ProjectName: "d"})
	err := Up(ctx, f, p, UpOptions{})
	if err == nil || !strings.Contains(err.Error(), "d-migrate-1 did not complete successfully (exit 3)") || slices.Contains(f.created, "d-web-1") {
		t.Fatalf("a migration exiting 3: %v, created %v", err, f.created)
	}
	f.exitCodes = nil
	// cache cannot be created: web does not require it, so it starts anyway.
	if err := Up(ctx, f, p, UpOptions{}); err != nil || !slices.Contains(f.created, "d-web-1") {
		t.Fatalf("an optional dependency failing: %v, created %v", err, f.created)
	}
	// cache comes up later, created: web (restart: true) restarts.
	f.failCreate = nil
	f.events = nil
	if err := Up(ctx, f, p, UpOptions{}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(f.events, "stop d-web-1") || !slices.Contains(f.events, "start d-web-1") {
		t.Errorf("depends_on restart: true: web not restarted after cache was created: %v", f.events)
	}
	// Nothing changes: nothing restarts.
	f.events = nil
	if err := Up(ctx, f, p, UpOptions{}); err != nil || slices.Contains(f.events, "stop d-web-1") {
		t.Errorf("unchanged up restarted web: %v %v", f.events, err)
	}
}

func TestFileDiscoveryIncludeExtends(t *testing.T) {
	root := t.TempDir()
	for _, k := range []string{"COMPOSE_PROJECT_NAME", "COMPOSE_FILE", "COMPOSE_PROFILES"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	write(t, root, "base.yaml", "services:\n  common:\n    image: base\n    environment: {FROM_BASE: \"1\"}\n")
	write(t, root, "db.yaml", "services:\n  db: {image: postgres}\n")
	write(t, root, "compose.yaml", `
include: [db.yaml]
services:
  web:
    extends: {file: base.yaml, service: common}
    environment: {OWN: "2"}
`)
	sub := filepath.Join(root, "src", "deep")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	// Found from a subdirectory, named after the file's directory.
	t.Chdir(sub)
	proj, err := Load(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(proj, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Project != strings.ToLower(filepath.Base(root)) {
		t.Errorf("project %q, want the directory's name %q", p.Project, filepath.Base(root))
	}
	if _, ok := p.Services["db"]; !ok {
		t.Errorf("include: services %v", slices.Sorted(mapKeys(p.Services)))
	}
	if w := p.Services["web"]; w == nil || w.Config.Image != "base" || w.Config.Env["FROM_BASE"] != "1" || w.Config.Env["OWN"] != "2" {
		t.Errorf("extends: web %+v", w)
	}
	// COMPOSE_FILE and COMPOSE_PROJECT_NAME.
	write(t, root, "other.yaml", "services:\n  solo: {image: x}\n")
	t.Setenv("COMPOSE_FILE", filepath.Join(root, "other.yaml"))
	t.Setenv("COMPOSE_PROJECT_NAME", "fromenv")
	proj, err = Load(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if proj.Name != "fromenv" || len(proj.Services) != 1 || proj.Services["solo"].Image != "x" {
		t.Errorf("COMPOSE_FILE/COMPOSE_PROJECT_NAME: %s %v", proj.Name, slices.Sorted(mapKeys(proj.Services)))
	}
	// COMPOSE_PROFILES.
	write(t, root, "prof.yaml", "services:\n  a: {image: x}\n  dbg: {image: x, profiles: [debug]}\n")
	t.Setenv("COMPOSE_FILE", filepath.Join(root, "prof.yaml"))
	t.Setenv("COMPOSE_PROFILES", "debug")
	if proj, err = Load(context.Background(), Options{}); err != nil || len(proj.Services) != 2 {
		t.Errorf("COMPOSE_PROFILES=debug: %v %v", proj, err)
	}
}

func TestRestartPolicy(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "compose.yaml", `
services:
  a: {image: x, restart: always}
  b: {image: x, restart: "on-failure:3"}
  c: {image: x, restart: unless-stopped}
  d: {image: x}
  e: {image: x, restart: sometimes}
`)
	proj, err := Load(context.Background(), Options{WorkingDir: dir, ProjectName: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewPlan(proj, nil); err == nil || !strings.Contains(err.Error(), "sometimes") {
		t.Fatalf("restart: sometimes: %v", err)
	}
	delete(proj.Services, "e")
	p, err := NewPlan(proj, nil)
	if err != nil {
		t.Fatal(err)
	}
	for svc, want := range map[string]string{"a": "always/0", "b": "on-failure/3", "c": "always/0", "d": "/0"} {
		r := p.Services[svc].Config.Restart
		if got := fmt.Sprintf("%s/%d", r.Policy, r.MaxRetries); got != want {
			t.Errorf("%s: restart %s, want %s", svc, got, want)
		}
	}
}

// TestBadInputNamesFileAndLine: compose-go's errors say where.
func TestBadInputNamesFileAndLine(t *testing.T) {
	for body, want := range map[string][]string{
		"services:\n  a:\n    image: [\n":                                                               {"compose.yaml: ", "line 3"},
		"services:\n  a:\n    image: x\n    prots: [1]\n":                                               {"compose.yaml", "services.a.prots"},
		"services:\n  a:\n    image: x\n    depends_on: [nope]\n":                                       {`"a" depends on undefined service "nope"`},
		"services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n": {"cycle", "a -> b -> a"},
	} {
		dir := t.TempDir()
		write(t, dir, "compose.yaml", body)
		_, err := Load(context.Background(), Options{WorkingDir: dir, ProjectName: "bad"})
		for _, w := range want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %v, want it to say %q", body, err, w)
			}
		}
	}
}

func TestStopSignalAndGracePeriod(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "compose.yaml", "services:\n  db: {image: x, stop_signal: SIGINT, stop_grace_period: 1m30s}\n  web: {image: x}\n")
	f := newFake()
	p := load(t, dir, Options{ProjectName: "st"})
	if err := Up(context.Background(), f, p, UpOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := Down(context.Background(), f, "st", p, DownOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := f.stops["st-db-1"]; got.Signal != "SIGINT" || got.Timeout != "1m30s" {
		t.Errorf("db stopped with %+v, want SIGINT and 1m30s", got)
	}
	if got := f.stops["st-web-1"]; got.Signal != "" || got.Timeout != "" {
		t.Errorf("web stopped with %+v, want the machine's defaults", got)
	}
}
