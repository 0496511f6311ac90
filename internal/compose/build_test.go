package compose

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestBuilds(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "compose.yaml", `
services:
  web:
    build:
      context: ./web
      dockerfile: Containerfile
      args: {A: "1"}
      target: prod
      tags: [reg.example/web:v1]
    depends_on: [api]
  api:
    image: reg.example/api:2
    build: {context: ., dockerfile_inline: "FROM busybox\n"}
  db:
    image: postgres
`)
	p := load(t, dir, Options{ProjectName: "shop"})
	bs, err := p.Builds(nil, true)
	if err != nil || len(bs) != 2 {
		t.Fatalf("builds %v %v", bs, err)
	}
	api, web := bs[0], bs[1]
	if web.Image != "shop-web" || p.Services["web"].Config.Image != "shop-web" {
		t.Errorf("web's image %q: docker compose names it PROJECT-SERVICE", web.Image)
	}
	if web.Context != filepath.Join(dir, "web") || web.Dockerfile != filepath.Join(dir, "web", "Containerfile") {
		t.Errorf("web context %s dockerfile %s", web.Context, web.Dockerfile)
	}
	if r := web.Request; !slices.Equal(r.Tags, []string{"shop-web", "reg.example/web:v1"}) || r.BuildArgs["A"] != "1" || r.Target != "prod" || r.Labels[LabelService] != "web" {
		t.Errorf("web request %+v", r)
	}
	if api.Image != "reg.example/api:2" || api.Dockerfile != "" || string(api.Request.Dockerfile) != "FROM busybox\n" {
		t.Errorf("api: image %s dockerfile %q inline %q", api.Image, api.Dockerfile, api.Request.Dockerfile)
	}
	only, err := p.Builds([]string{"web"}, false)
	if err != nil || len(only) != 1 || only[0].Service != "web" {
		t.Errorf("build web alone: %v %v", only, err)
	}
	withDeps, _ := p.Builds([]string{"web"}, true)
	if len(withDeps) != 2 {
		t.Errorf("build web with its dependencies: %d builds", len(withDeps))
	}
	imgs, err := p.Images(nil, func(s *Service) bool { return s.Build == nil })
	if err != nil || !slices.Equal(imgs, []string{"postgres"}) {
		t.Errorf("images to pull %v %v", imgs, err)
	}
}

func TestPrepareRun(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "compose.yaml", `
services:
  web:
    image: x
    command: [serve]
    ports: ["8080:80"]
    environment: {A: "1"}
    restart: always
    depends_on: [db]
  db:
    image: postgres
`)
	f := newFake()
	p := load(t, dir, Options{ProjectName: "shop"})
	req, err := PrepareRun(context.Background(), f, p, RunOptions{Service: "web", Cmd: []string{"migrate"}, Env: map[string]string{"B": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.created, []string{"shop-db-1"}) || len(f.nets) != 1 {
		t.Errorf("run brings up the dependencies and networks: created %v nets %v", f.created, f.nets)
	}
	c := req.Config
	if !strings.HasPrefix(req.Name, "shop-web-run-") || c.Metadata[LabelOneOff] != "True" || c.Metadata[LabelNumber] != "" {
		t.Errorf("one-off name %s labels %v", req.Name, c.Metadata)
	}
	if !slices.Equal(c.Init.Cmd, []string{"migrate"}) || c.Env["A"] != "1" || c.Env["B"] != "2" || len(c.Services) != 0 || c.Restart.Policy != "" {
		t.Errorf("one-off config: cmd %v env %v ports %v restart %v", c.Init.Cmd, c.Env, c.Services, c.Restart)
	}
	if p.Services["web"].Config.Env["B"] != "" {
		t.Error("run changed the service's own config")
	}
	// A second up leaves the one-off alone.
	if _, err := f.CreateMachine(context.Background(), "shop", req); err != nil {
		t.Fatal(err)
	}
	f.removed = nil
	if err := Up(context.Background(), f, p, UpOptions{}); err != nil || len(f.removed) != 0 {
		t.Errorf("up after run: removed %v err %v", f.removed, err)
	}
	if _, err := PrepareRun(context.Background(), f, p, RunOptions{Service: "nope"}); err == nil {
		t.Error("run of an unknown service")
	}
}
