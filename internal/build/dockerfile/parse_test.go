package dockerfile

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/errdefs"
)

func mustParse(t *testing.T, src string, opts Options) *File {
	t.Helper()
	f, err := Parse([]byte(src), opts)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return f
}

func names(ss []*Stage) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.String())
	}
	return out
}

func TestStageSelection(t *testing.T) {
	src := `ARG BASE=busybox:local
FROM ${BASE} AS base
RUN echo base
FROM scratch AS unused
COPY x /x
FROM base AS tools
RUN echo tools
FROM busybox:local AS other
FROM base AS assets
FROM tools
COPY --from=assets /a /a
RUN --mount=type=bind,from=other,target=/o true
`
	for name, tc := range map[string]struct {
		target string
		want   []string
	}{
		"last":   {"", []string{"base", "tools", "other", "assets", "stage 5"}},
		"middle": {"tools", []string{"base", "tools"}},
		"upper":  {"ASSETS", []string{"base", "assets"}},
	} {
		t.Run(name, func(t *testing.T) {
			f := mustParse(t, src, Options{Target: tc.target})
			if got := names(f.Stages); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("stages = %v, want %v", got, tc.want)
			}
			if f.Target != f.Stages[len(f.Stages)-1] {
				t.Error("target is not last")
			}
		})
	}
	f := mustParse(t, src, Options{BuildArgs: map[string]string{"BASE": "alpine:3"}})
	if f.Stages[0].Base != "alpine:3" {
		t.Errorf("FROM ${BASE} with --build-arg = %q", f.Stages[0].Base)
	}
	if f.Stages[1].BaseStage != f.Stages[0] {
		t.Error("FROM base does not point at stage base")
	}
}

func TestParseErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		src, target, want string
	}{
		"empty":        {"\n\n", "", "empty"},
		"no from":      {"RUN echo\n", "", "Dockerfile:1:"},
		"unknown":      {"FROM scratch\nFROB x\n", "", "Dockerfile:2: unknown instruction: FROB"},
		"bad target":   {"FROM scratch AS a\n", "b", `target stage "b" could not be found`},
		"forward from": {"FROM scratch\nCOPY --from=later /x /x\nFROM scratch AS later\n", "", "Dockerfile:2:"},
		"blank base":   {"ARG X\nFROM $X\n", "", "Dockerfile:2: base name ($X) should not be blank"},
		"bad chmod":    {"FROM scratch\nCOPY --chmod=999 a /a\n", "", "Dockerfile:2: invalid chmod"},
	} {
		t.Run(name, func(t *testing.T) {
			f, err := Parse([]byte(tc.src), Options{Target: tc.target})
			if err == nil {
				_, _, err = f.Target.Dispatch(v1.Config{}, nil, nil)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !errors.Is(err, ErrSyntax) {
				t.Errorf("err %v is not invalid-argument/syntax", err)
			}
		})
	}
}

func TestDispatchEveryInstruction(t *testing.T) {
	src := `FROM busybox:local
ARG VERSION=1
ARG FROMBUILD
ENV APP=/app PATH=$PATH:/app/bin
WORKDIR $APP
WORKDIR sub
USER ferry
EXPOSE 80 53/udp 8000-8001
LABEL version=$VERSION "other"="x y"
VOLUME ["/data"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=2 CMD wget -q localhost
SHELL ["/bin/sh", "-ec"]
ONBUILD RUN echo child
RUN echo $APP $VERSION
COPY --chown=ferry:ferry --chmod=0640 a b ./
ADD --chown=1:2 archive.tar /opt/
MAINTAINER me
ENTRYPOINT ["/bin/app"]
CMD serve --port 80
`
	f := mustParse(t, src, Options{BuildArgs: map[string]string{"FROMBUILD": "yes", "HTTP_PROXY": "http://p"}})
	base := v1.Config{Env: []string{"PATH=/bin"}, Cmd: []string{"sh"}}
	steps, _, err := f.Target.Dispatch(base, []string{"ENV TRIGGERED=1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 20 {
		t.Fatalf("%d steps", len(steps))
	}
	if !steps[0].OnBuild || steps[0].Config.Env[1] != "TRIGGERED=1" {
		t.Errorf("trigger step = %+v", steps[0])
	}
	cfg := steps[len(steps)-1].Config
	want := v1.Config{
		Env:          []string{"PATH=/bin:/app/bin", "TRIGGERED=1", "APP=/app"},
		WorkingDir:   "/app/sub",
		User:         "ferry",
		ExposedPorts: map[string]struct{}{"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}},
		Labels:       map[string]string{"version": "1", "other": "x y"},
		Volumes:      map[string]struct{}{"/data": {}},
		StopSignal:   "SIGINT",
		Shell:        []string{"/bin/sh", "-ec"},
		OnBuild:      []string{"RUN echo child"},
		Entrypoint:   []string{"/bin/app"},
		Cmd:          []string{"/bin/sh", "-ec", "serve --port 80"},
		ArgsEscaped:  true,
	}
	hc := cfg.Healthcheck
	cfg.Healthcheck = nil
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("config\n got %+v\nwant %+v", cfg, want)
	}
	if hc == nil || hc.Retries != 2 || hc.Interval.Seconds() != 5 || !reflect.DeepEqual(hc.Test, []string{"CMD-SHELL", "wget -q localhost"}) {
		t.Errorf("healthcheck = %+v", hc)
	}
	var run *Step
	var copies []*Step
	for i := range steps {
		switch steps[i].Kind {
		case Run:
			run = &steps[i]
		case Copy:
			copies = append(copies, &steps[i])
		}
	}
	r := run.Run
	if !reflect.DeepEqual(r.Argv, []string{"/bin/sh", "-ec", "echo $APP $VERSION"}) {
		t.Errorf("argv = %q", r.Argv)
	}
	env := strings.Join(r.Env, " ")
	for _, w := range []string{"VERSION=1", "FROMBUILD=yes", "APP=/app", "HTTP_PROXY=http://p"} {
		if !strings.Contains(env, w) {
			t.Errorf("RUN env %q lacks %s", env, w)
		}
	}
	if strings.Contains(strings.Join(cfg.Env, " "), "VERSION") {
		t.Error("an ARG leaked into the image env")
	}
	if r.User != "ferry" || r.Workdir != "/app/sub" || r.Network != "default" {
		t.Errorf("run = %+v", r)
	}
	if run.History != "RUN |2 VERSION=1 FROMBUILD=yes /bin/sh -ec echo $APP $VERSION # buildkit" {
		t.Errorf("history = %q", run.History)
	}
	c := copies[0].Copy
	if c.Dest != "/app/sub/" || !reflect.DeepEqual(c.Sources, []string{"a", "b"}) || c.Chown != "ferry:ferry" || c.Chmod != "0640" || c.Add || c.Unpack {
		t.Errorf("copy = %+v", c)
	}
	if a := copies[1].Copy; !a.Add || !a.Unpack || a.Dest != "/opt/" {
		t.Errorf("add = %+v", a)
	}
	for _, s := range steps {
		if s.Kind == Meta && s.History == "" && !strings.HasPrefix(s.Text, "ONBUILD") {
			t.Errorf("step %q has no history", s.Text)
		}
	}
	if steps[1].Text != "ARG VERSION=1" || steps[4].Text != "WORKDIR /app" {
		t.Errorf("texts %q %q", steps[1].Text, steps[4].Text)
	}
}

func TestEntrypointResetsInheritedCmd(t *testing.T) {
	f := mustParse(t, "FROM x\nENTRYPOINT [\"/e\"]\n", Options{})
	steps, _, err := f.Target.Dispatch(v1.Config{Cmd: []string{"sh"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := steps[0].Config; c.Cmd != nil || c.Entrypoint[0] != "/e" {
		t.Errorf("config = %+v", c)
	}
}

func TestHeredocs(t *testing.T) {
	src := "FROM busybox\n" +
		"RUN <<EOF\necho one\necho two\nEOF\n" +
		"RUN <<EOF\n#!/bin/sh -e\necho script\nEOF\n" +
		"RUN cat <<A > /a && cat <<B > /b\nalpha\nA\nbeta\nB\n" +
		"COPY <<EOF /etc/motd\nhello $NAME\nEOF\n"
	f := mustParse(t, src, Options{})
	steps, _, err := f.Target.Dispatch(v1.Config{Env: []string{"NAME=ferry"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := steps[0].Run.Argv; !reflect.DeepEqual(got, []string{"/bin/sh", "-c", "echo one\necho two\n"}) {
		t.Errorf("simple heredoc argv = %q", got)
	}
	if r := steps[1].Run; !reflect.DeepEqual(r.Argv, []string{"/dev/pipes/EOF"}) || len(r.Files) != 1 || !strings.HasPrefix(r.Files[0].Data, "#!/bin/sh -e\n") {
		t.Errorf("shebang heredoc = %+v", r)
	}
	if got := steps[2].Run.Argv[2]; got != "cat <<A > /a && cat <<B > /b\nalpha\nA\nbeta\nB" {
		t.Errorf("compound heredoc = %q", got)
	}
	if c := steps[3].Copy; len(c.Inline) != 1 || c.Inline[0].Name != "EOF" || c.Inline[0].Data != "hello ferry\n" || c.Dest != "/etc/motd" {
		t.Errorf("COPY heredoc = %+v", c)
	}
}

func TestRunMounts(t *testing.T) {
	src := `FROM busybox AS a
FROM busybox
WORKDIR /src
RUN --mount=type=cache,target=.cache --mount=type=secret,id=tok --mount=type=bind,from=a,source=/etc,target=/mnt/etc --network=none true
`
	f := mustParse(t, src, Options{})
	steps, _, err := f.Target.Dispatch(v1.Config{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := steps[1].Run
	if r.Network != "none" || len(r.Mounts) != 3 {
		t.Fatalf("run = %+v", r)
	}
	if m := r.Mounts[0]; m.Type != "cache" || m.Target != "/src/.cache" || m.CacheID != "/src/.cache" || m.Sharing != "shared" {
		t.Errorf("cache mount = %+v", m)
	}
	if m := r.Mounts[1]; m.Type != "secret" || m.SecretID != "tok" || m.Target != "/run/secrets/tok" {
		t.Errorf("secret mount = %+v", m)
	}
	if m := r.Mounts[2]; m.Type != "bind" || m.FromStage != f.Stages[0] || m.Source != "/etc" || !m.ReadOnly {
		t.Errorf("bind mount = %+v", m)
	}
	if len(f.Target.Deps) != 1 || f.Target.Deps[0] != f.Stages[0] {
		t.Errorf("deps = %v", names(f.Target.Deps))
	}
}

func TestArgScopes(t *testing.T) {
	src := `ARG G=global
ARG OVERRIDE=default
FROM scratch
ARG G
ARG OVERRIDE
ARG LOCAL=$G-local
ENV FROM_ARG=$LOCAL
`
	f := mustParse(t, src, Options{BuildArgs: map[string]string{"OVERRIDE": "cli"}})
	steps, args, err := f.Target.Dispatch(v1.Config{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if env := steps[len(steps)-1].Config.Env; !reflect.DeepEqual(env, []string{"FROM_ARG=global-local"}) {
		t.Errorf("env = %q", env)
	}
	if len(args) != 3 || *args[1].Value != "cli" {
		t.Errorf("args = %+v", args)
	}
}
