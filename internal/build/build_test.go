package build

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
)

func (e *env) write(files map[string]string) {
	e.t.Helper()
	for p, c := range files {
		full := filepath.Join(e.ctxDir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
}

// layerFiles lists layer i of ref as "name uid:gid".
func (e *env) layerFiles(ref string, i int) []string {
	e.t.Helper()
	img, _, err := e.store.Image(context.Background(), ref)
	if err != nil {
		e.t.Fatal(err)
	}
	ls, _ := img.Layers()
	if i < 0 {
		i += len(ls)
	}
	rc, err := ls[i].Uncompressed()
	if err != nil {
		e.t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var out []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %d:%d", h.Name, h.Uid, h.Gid))
	}
	sort.Strings(out)
	return out
}

func TestBuildCopyAndMetadata(t *testing.T) {
	e := newEnv(t)
	e.write(map[string]string{"app/main.sh": "echo hi", "app/debug.log": "x", ".dockerignore": "**/*.log\n", "README": "r"})
	df := `FROM busybox:local
LABEL org.example=yes
ENV APP_HOME=/srv/app
WORKDIR $APP_HOME
COPY --chown=ferry:ferry app ./
USER ferry
EXPOSE 8080
ENTRYPOINT ["/bin/sh", "main.sh"]
`
	res, evs, err := e.build(df, Request{Tags: []string{"app:1"}, Labels: map[string]string{"from-cli": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Boots != 0 || res.Steps != 7 || res.Cached != 0 {
		t.Errorf("result = %+v", res)
	}
	if s := states(evs); s != "done" {
		t.Errorf("step events = %q (only the COPY makes a layer)", s)
	}
	cfg := e.config("app:1")
	c := cfg.Config
	if c.WorkingDir != "/srv/app" || c.User != "ferry" || strings.Join(c.Entrypoint, " ") != "/bin/sh main.sh" ||
		c.Labels["org.example"] != "yes" || c.Labels["from-cli"] != "1" || !strings.Contains(strings.Join(c.Env, " "), "APP_HOME=/srv/app") {
		t.Errorf("config = %s", jsonString(c))
	}
	if _, ok := c.ExposedPorts["8080/tcp"]; !ok {
		t.Error("EXPOSE lost")
	}
	if len(cfg.RootFS.DiffIDs) != 2 {
		t.Fatalf("%d layers, want base + the COPY", len(cfg.RootFS.DiffIDs))
	}
	if n := len(cfg.History); n != 8 || cfg.History[len(cfg.History)-1].CreatedBy != `ENTRYPOINT ["/bin/sh" "main.sh"]` {
		t.Errorf("history (%d) = %s", n, jsonString(cfg.History))
	}
	got := strings.Join(e.layerFiles("app:1", -1), "\n")
	want := "srv/ 1000:1000\nsrv/app/ 1000:1000\nsrv/app/main.sh 1000:1000"
	if got != want {
		t.Errorf("COPY layer:\n%s\nwant:\n%s (the .dockerignore'd log must be absent)", got, want)
	}
	list, _ := e.store.List(context.Background())
	found := false
	for _, s := range list {
		for _, tag := range s.RepoTags {
			found = found || strings.HasSuffix(tag, "/app:1")
		}
	}
	if !found {
		t.Error("ferry images does not list app:1")
	}
}

func TestBuildCacheHitAndMiss(t *testing.T) {
	e := newEnv(t)
	e.write(map[string]string{"a.txt": "a", "b.txt": "b"})
	e.runner.act = func(s guest.BuildStep) (int, []guest.TreeEntry, string) {
		return 0, []guest.TreeEntry{{Name: "out-" + s.Upper, Type: guest.TreeReg, Link: s.Argv[2]}}, ""
	}
	df := `FROM busybox:local
COPY a.txt /a.txt
RUN echo one
COPY b.txt /b.txt
RUN echo two
RUN echo three
`
	args := map[string]string{"SOURCE_DATE_EPOCH": "1700000000"}
	first, evs, err := e.build(df, Request{Tags: []string{"c:1"}, BuildArgs: args})
	if err != nil {
		t.Fatal(err)
	}
	if first.Boots != 1 || len(e.runner.runs) != 3 {
		t.Fatalf("first build: boots %d, runs %d; want 1 boot for 3 RUNs", first.Boots, len(e.runner.runs))
	}
	if s := states(evs); s != "done done done done done" {
		t.Errorf("states %q", s)
	}
	// The first RUN sees the COPY layer, streamed in; the next RUN sees its upper.
	r := e.runner.runs
	if len(r[0].Lowers) != 1 || len(r[1].Lowers) != 3 || r[1].Lowers[1] != r[0].Upper || r[2].Lowers[0] != r[1].Upper {
		t.Errorf("lowers: %v / %v / %v", r[0].Lowers, r[1].Lowers, r[2].Lowers)
	}
	if strings.Join(e.runner.loads, " ") != "layer:l1 layer:l3" {
		t.Errorf("loads = %v: only host-made layers go into the VM", e.runner.loads)
	}
	if !strings.Contains(logs(evs), "ran echo one") {
		t.Errorf("RUN output not streamed: %q", logs(evs))
	}

	// Nothing changed: every step is cached, no VM boots, same image.
	second, evs, err := e.build(df, Request{Tags: []string{"c:2"}, BuildArgs: args})
	if err != nil {
		t.Fatal(err)
	}
	if second.Boots != 0 || second.Cached != 5 || states(evs) != "cached cached cached cached cached" {
		t.Errorf("rebuild: %+v, states %q", second, states(evs))
	}
	if second.ID != first.ID {
		t.Errorf("rebuild digest %s != %s", second.ID, first.ID)
	}

	// One copied file changed: that COPY and what follows re-run, the rest hits.
	e.write(map[string]string{"b.txt": "B"})
	third, evs, err := e.build(df, Request{Tags: []string{"c:3"}, BuildArgs: args})
	if err != nil {
		t.Fatal(err)
	}
	if s := states(evs); s != "cached cached done done done" || third.Boots != 1 || third.ID == first.ID {
		t.Errorf("one-file change: states %q, %+v", s, third)
	}
	// An mtime-only change is not a change.
	os.Chtimes(filepath.Join(e.ctxDir, "a.txt"), nowMinus(), nowMinus())
	_, evs, _ = e.build(df, Request{BuildArgs: args})
	if s := states(evs); s != "cached cached cached cached cached" {
		t.Errorf("after touch: %q", s)
	}
	// --no-cache runs everything again.
	_, evs, _ = e.build(df, Request{BuildArgs: args, NoCache: true})
	if s := states(evs); s != "done done done done done" {
		t.Errorf("--no-cache: %q", s)
	}
	// A pruned cache misses, and its layers are collected.
	rep, err := e.b.Prune(context.Background(), 0)
	if err != nil || rep.Steps == 0 {
		t.Fatalf("prune = %+v, %v", rep, err)
	}
	_, evs, _ = e.build(df, Request{BuildArgs: args})
	if s := states(evs); s != "done done done done done" {
		t.Errorf("after prune: %q", s)
	}
}

func TestBuildReproducibleDigest(t *testing.T) {
	e := newEnv(t)
	e.write(map[string]string{"f": "x"})
	e.runner.act = func(s guest.BuildStep) (int, []guest.TreeEntry, string) {
		// A RUN's output carries the time it ran.
		return 0, []guest.TreeEntry{{Name: "made", Type: guest.TreeReg, Link: "m", MtimeNS: now().UnixNano()}}, ""
	}
	df := "FROM busybox:local\nCOPY f /f\nRUN make\n"
	args := map[string]string{"SOURCE_DATE_EPOCH": "1600000000"}
	a, _, err := e.build(df, Request{NoCache: true, BuildArgs: args})
	if err != nil {
		t.Fatal(err)
	}
	os.Chtimes(filepath.Join(e.ctxDir, "f"), nowMinus(), nowMinus())
	b, _, err := e.build(df, Request{NoCache: true, BuildArgs: args})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != b.ID {
		t.Errorf("SOURCE_DATE_EPOCH builds differ: %s %s", a.ID, b.ID)
	}
	c, _, _ := e.build(df, Request{NoCache: true})
	if c.ID == a.ID {
		t.Error("without SOURCE_DATE_EPOCH the digest should carry the build time")
	}
}

func TestBuildFailingRunTagsNothing(t *testing.T) {
	e := newEnv(t)
	e.runner.act = func(s guest.BuildStep) (int, []guest.TreeEntry, string) { return 3, nil, "compiler exploded\n" }
	_, evs, err := e.build("FROM busybox:local\nRUN make\n", Request{Tags: []string{"broken:1"}})
	if !errors.Is(err, ErrStepFailed) || !strings.Contains(err.Error(), "exit code 3") || !strings.Contains(err.Error(), "RUN make") {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(logs(evs), "compiler exploded") {
		t.Error("the failing step's output was not shown")
	}
	if _, _, err := e.store.Image(context.Background(), "broken:1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("a failed build tagged its image: %v", err)
	}
	if e.runner.closed != 1 {
		t.Errorf("the builder VM was not closed (%d)", e.runner.closed)
	}
}

func TestBuildMultiStageOnlyNeeded(t *testing.T) {
	e := newEnv(t)
	e.write(map[string]string{"src.txt": "source"})
	e.runner.act = func(s guest.BuildStep) (int, []guest.TreeEntry, string) {
		return 0, []guest.TreeEntry{{Name: "out", Type: guest.TreeDir, Mode: 0o755}, {Name: "out/bin", Type: guest.TreeReg, Link: "binary", Mode: 0o755}}, ""
	}
	df := `FROM busybox:local AS build
COPY src.txt /src/
RUN compile
FROM busybox:local AS unused
RUN never
FROM scratch
COPY --from=build /out/bin /app
ENTRYPOINT ["/app"]
`
	res, _, err := e.build(df, Request{Tags: []string{"ms:1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range e.runner.runs {
		if r.Argv[len(r.Argv)-1] == "never" {
			t.Error("an unneeded stage was built")
		}
	}
	if res.Boots != 1 {
		t.Errorf("boots = %d", res.Boots)
	}
	if got := strings.Join(e.layerFiles("ms:1", 0), " "); got != "app 0:0" {
		t.Errorf("final image layer = %s", got)
	}
	if n := len(e.config("ms:1").RootFS.DiffIDs); n != 1 {
		t.Errorf("scratch stage has %d layers", n)
	}
}

func TestBuildSecretsAndBadInput(t *testing.T) {
	e := newEnv(t)
	e.write(map[string]string{"id_rsa": "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"})
	e.runner.act = func(s guest.BuildStep) (int, []guest.TreeEntry, string) {
		return 0, []guest.TreeEntry{{Name: "root", Type: guest.TreeDir, Mode: 0o700}, {Name: "root/.wh.id_rsa", Type: guest.TreeReg}}, ""
	}
	df := "FROM busybox:local\nCOPY id_rsa /root/\nRUN --mount=type=secret,id=tok,required=true rm /root/id_rsa\n"
	if _, _, err := e.build(df, Request{}); err == nil || !strings.Contains(err.Error(), `secret "tok" is required`) {
		t.Fatalf("missing required secret: %v", err)
	}
	res, evs, err := e.build(df, Request{Tags: []string{"leaky:1"}, Secrets: map[string][]byte{"tok": []byte("hunter2")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 1 || res.Findings[0].Path != "/root/id_rsa" {
		t.Errorf("findings = %+v", res.Findings)
	}
	warned := false
	for _, ev := range evs {
		warned = warned || strings.Contains(ev.Warning, "/root/id_rsa")
	}
	if !warned {
		t.Error("no warning about the hidden key")
	}
	if m := e.runner.runs[0].Mounts; len(m) != 1 || string(m[0].Data) != "hunter2" || m[0].Target != "/run/secrets/tok" {
		t.Errorf("secret mount = %+v", m)
	}
	if _, _, err := e.build(df, Request{Tags: []string{"leaky:2"}, Secrets: map[string][]byte{"tok": []byte("x")}, FailOnSecrets: true}); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("--fail-on-secrets: %v", err)
	}
	if _, _, err := e.store.Image(context.Background(), "leaky:2"); err == nil {
		t.Error("--fail-on-secrets tagged the image")
	}
	for name, tc := range map[string]struct{ df, want string }{
		"outside context": {"FROM busybox:local\nCOPY ../../etc/passwd /x\n", "forbidden path outside the build context"},
		"missing source":  {"FROM busybox:local\nCOPY nope /x\n", "not found in the build context"},
		"syntax":          {"FROM busybox:local\nCOPY onlyone\n", "Dockerfile:2: COPY requires at least two arguments"},
		"unknown user":    {"FROM busybox:local\nCOPY --chown=nobody2 id_rsa /x\n", `no user "nobody2"`},
	} {
		if _, _, err := e.build(tc.df, Request{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
}

// TestCacheMountOneBuildAtATime: two builds using one RUN
// --mount=type=cache id never hold it at once: the second waits (and says
// so) until the first is done.
func TestCacheMountOneBuildAtATime(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	var mu sync.Mutex
	inside, maxInside := 0, 0
	e.runner.act = func(s guest.BuildStep) (int, []guest.TreeEntry, string) {
		mu.Lock()
		inside++
		if inside > maxInside {
			maxInside = inside
		}
		first := maxInside == 1 && len(e.runner.runs) == 1
		mu.Unlock()
		if first {
			<-release
		}
		mu.Lock()
		inside--
		mu.Unlock()
		return 0, nil, ""
	}
	errs := make(chan error, 2)
	var second []Event
	go func() {
		_, _, err := e.build("FROM busybox:local\nRUN --mount=type=cache,id=shared,target=/c echo one\n", Request{})
		errs <- err
	}()
	for {
		e.runner.mu.Lock()
		n := len(e.runner.runs)
		e.runner.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	go func() {
		var err error
		_, second, err = e.build("FROM busybox:local\nRUN --mount=type=cache,id=shared,target=/c echo two\n", Request{})
		errs <- err
	}()
	time.Sleep(500 * time.Millisecond)
	close(release)
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if maxInside != 1 {
		t.Errorf("%d builds held the cache at once", maxInside)
	}
	waited := false
	for _, ev := range second {
		waited = waited || strings.Contains(ev.Message, `waiting for cache "shared"`)
	}
	if !waited {
		t.Error("the second build did not wait for the cache")
	}
}

// TestBindMountFromContext: a context file bind-mounted into a RUN is
// loaded into the VM as a directory, and its content keys the step.
func TestBindMountFromContext(t *testing.T) {
	e := newEnv(t)
	e.write(map[string]string{"go.mod": "module x\n"})
	df := "FROM busybox:local\nRUN --mount=type=bind,source=go.mod,target=/src/go.mod cat /src/go.mod\n"
	if _, _, err := e.build(df, Request{}); err != nil {
		t.Fatal(err)
	}
	m := e.runner.runs[0].Mounts
	if len(m) != 1 || m[0].Type != "bind" || m[0].SubPath != "go.mod" || !m[0].ReadOnly || !strings.HasPrefix(m[0].Source, "d") {
		t.Errorf("mount = %+v", m)
	}
	if !strings.Contains(strings.Join(e.runner.loads, " "), "dir:"+m[0].Source) {
		t.Errorf("loads = %v", e.runner.loads)
	}
	_, evs, _ := e.build(df, Request{})
	if s := states(evs); s != "cached" {
		t.Errorf("unchanged bind source: %q", s)
	}
	e.write(map[string]string{"go.mod": "module y\n"})
	_, evs, _ = e.build(df, Request{})
	if s := states(evs); s != "done" {
		t.Errorf("changed bind source: %q", s)
	}
}
