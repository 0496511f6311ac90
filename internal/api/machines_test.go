package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/logs"
	"github.com/ferryvm/ferry/internal/machine"
)

// fakeMachines is a MachineService holding machines in a map; exec echoes
// stdin upper-cased and exits with len(cmd).
type fakeMachines struct {
	ms     map[string]*types.Machine
	events chan types.Event
	stop   machine.StopOptions
}

func newFakeMachines() *fakeMachines {
	return &fakeMachines{ms: map[string]*types.Machine{}, events: make(chan types.Event, 8)}
}

func (f *fakeMachines) get(app, ref string) (*types.Machine, error) {
	if m, ok := f.ms[ref]; ok && (app == "" || m.App == app) {
		return m, nil
	}
	return nil, fmt.Errorf("no machine %q: %w", ref, errdefs.ErrNotFound)
}

func (f *fakeMachines) Create(_ context.Context, app string, req types.CreateRequest) (*types.Machine, error) {
	if err := machine.ValidateConfig(&req.Config); err != nil {
		return nil, err
	}
	m := &types.Machine{ID: "m1", Name: req.Name, App: app, State: types.StateStarted, Config: req.Config}
	f.ms[m.ID] = m
	return m, nil
}
func (f *fakeMachines) List(app string, all bool) []*types.Machine {
	var out []*types.Machine
	for _, m := range f.ms {
		if app == "" || m.App == app {
			out = append(out, m)
		}
	}
	return out
}
func (f *fakeMachines) Get(app, ref string) (*types.Machine, error) { return f.get(app, ref) }
func (f *fakeMachines) Update(_ context.Context, app, ref string, cfg types.Config) (*types.Machine, error) {
	m, err := f.get(app, ref)
	if err != nil {
		return nil, err
	}
	m.Config, m.Version = cfg, m.Version+1
	return m, nil
}
func (f *fakeMachines) Start(_ context.Context, app, ref string) (*types.Machine, error) {
	return f.get(app, ref)
}
func (f *fakeMachines) Stop(_ context.Context, app, ref string, opt machine.StopOptions) (*types.Machine, error) {
	f.stop = opt
	m, err := f.get(app, ref)
	if err == nil {
		m.State = types.StateStopped
	}
	return m, err
}
func (f *fakeMachines) Restart(_ context.Context, app, ref string, opt machine.StopOptions) (*types.Machine, error) {
	return nil, fmt.Errorf("machine %s is busy (stop in progress): %w", ref, errdefs.ErrConflict)
}
func (f *fakeMachines) Signal(context.Context, string, string, syscall.Signal) error { return nil }
func (f *fakeMachines) Wait(_ context.Context, app, ref string, st types.State, timeout time.Duration) (*types.Machine, error) {
	m, err := f.get(app, ref)
	if err != nil {
		return nil, err
	}
	if m.State != st {
		return nil, fmt.Errorf("timed out after %s: %w", timeout, errdefs.ErrUnavailable)
	}
	return m, nil
}
func (f *fakeMachines) Destroy(ctx context.Context, app, ref string, force bool) error {
	return f.DestroyWithVolumes(ctx, app, ref, force, false)
}
func (f *fakeMachines) DestroyWithVolumes(_ context.Context, app, ref string, force, anonymous bool) error {
	if _, err := f.get(app, ref); err != nil {
		return err
	}
	delete(f.ms, ref)
	return nil
}
func (f *fakeMachines) Rename(_ context.Context, app, ref, name string) (*types.Machine, error) {
	m, err := f.get(app, ref)
	if err == nil {
		m.Name = name
	}
	return m, err
}
func (f *fakeMachines) Versions(app, ref string) ([]types.Config, error) { return nil, nil }
func (f *fakeMachines) Stats(app, ref string, _ time.Duration) (*types.Stats, error) {
	return &types.Stats{ID: ref, PID: 42}, nil
}
func (f *fakeMachines) Exec(_ context.Context, app, ref string, req types.ExecRequest, stdio guest.ExecIO) (int, error) {
	if _, err := f.get(app, ref); err != nil {
		return 0, err
	}
	if stdio.Stdin != nil {
		b, _ := io.ReadAll(stdio.Stdin)
		fmt.Fprint(stdio.Stdout, strings.ToUpper(string(b)))
	}
	fmt.Fprint(stdio.Stderr, "err:"+strings.Join(req.Cmd, " "))
	return len(req.Cmd), nil
}

var logTime = time.Date(2026, 12, 4, 6, 0, 0, 5, time.UTC)

func (f *fakeMachines) Logs(_ context.Context, app, ref string, opt machine.LogOptions, fn func(logs.Entry) error) error {
	for i := range 3 {
		if opt.Tail > 0 && i < 3-opt.Tail {
			continue
		}
		e := logs.Entry{Stream: logs.Stdout, Data: fmt.Appendf(nil, "line %d\n", i), Time: logTime.Add(time.Duration(i) * time.Second)}
		if i == 1 {
			e.Stream = logs.Stderr
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}
func (f *fakeMachines) Subscribe(app, id string) (<-chan types.Event, func()) {
	return f.events, func() {}
}

func TestMachinesAPI(t *testing.T) {
	fm := newFakeMachines()
	s := NewServer(nil)
	RegisterMachines(s, fm)
	c := serve(t, s, "")
	ctx := context.Background()

	m, err := c.CreateMachine(ctx, "web", types.CreateRequest{Name: "a", Config: types.Config{Image: "busybox"}})
	if err != nil || m.ID != "m1" || m.App != "web" || m.Config.Guest.MemoryMB != machine.DefaultMemoryMB {
		t.Fatalf("create = %+v, %v", m, err)
	}
	if _, err := c.CreateMachine(ctx, "web", types.CreateRequest{}); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "config.image") {
		t.Fatalf("create without image: %v", err)
	}
	if list, err := c.ListMachines(ctx, "web", true); err != nil || len(list) != 1 {
		t.Fatalf("list = %v, %v", list, err)
	}
	if _, err := c.GetMachine(ctx, "web", "nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("get unknown: %v", err)
	}
	if _, err := c.StopMachine(ctx, "web", "m1", types.StopRequest{Signal: "SIGINT", Timeout: "3"}); err != nil {
		t.Fatal(err)
	}
	if fm.stop.Signal != syscall.SIGINT || fm.stop.Timeout != 3*time.Second {
		t.Fatalf("stop options = %+v", fm.stop)
	}
	if _, err := c.StopMachine(ctx, "web", "m1", types.StopRequest{Signal: "SIGBOGUS"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("bad signal: %v", err)
	}
	if _, err := c.RestartMachine(ctx, "web", "m1", types.StopRequest{}); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("restart conflict: %v", err)
	}
	if got, err := c.WaitMachine(ctx, "web", "m1", types.StateStopped, time.Second); err != nil || got.State != types.StateStopped {
		t.Fatalf("wait = %+v, %v", got, err)
	}
	if err := c.Do(ctx, "GET", "/v1/apps/web/machines/m1/wait?state=sleeping", nil, nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("wait bad state: %v", err)
	}

	fm.ms["m1"].State = types.StateStarted
	var out, errb bytes.Buffer
	code, err := c.ExecMachine(ctx, "web", "m1", types.ExecRequest{Cmd: []string{"cat", "-"}},
		guest.ExecIO{Stdin: strings.NewReader("hello"), Stdout: &out, Stderr: &errb})
	if err != nil || code != 2 || out.String() != "HELLO" || errb.String() != "err:cat -" {
		t.Fatalf("exec = %d %q %q %v", code, out.String(), errb.String(), err)
	}
	var res types.ExecResult
	if err := c.Do(ctx, "POST", "/v1/apps/web/machines/m1/exec", types.ExecRequest{Cmd: []string{"x"}}, &res); err != nil || res.ExitCode != 1 || res.Stderr != "err:x" {
		t.Fatalf("buffered exec = %+v, %v", res, err)
	}
	if _, err := c.ExecMachine(ctx, "web", "nope", types.ExecRequest{Cmd: []string{"x"}}, guest.ExecIO{Stdout: &out}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("exec unknown machine: %v", err)
	}

	var logs bytes.Buffer
	if err := c.MachineLogs(ctx, "web", "m1", LogsOptions{Tail: 2}, &logs); err != nil || logs.String() != "line 1\nline 2\n" {
		t.Fatalf("logs = %q, %v", logs.String(), err)
	}
	var lines []string
	if err := c.MachineLogLines(ctx, "web", "m1", LogsOptions{Tail: 2}, func(l types.LogLine) error {
		lines = append(lines, fmt.Sprintf("%s %s %q", l.Time.Format(time.RFC3339Nano), l.Stream, l.Raw()))
		return nil
	}); err != nil || strings.Join(lines, "|") != `2026-12-04T06:00:01.000000005Z stderr "line 1\n"|2026-12-04T06:00:02.000000005Z stdout "line 2\n"` {
		t.Fatalf("log lines = %q, %v", lines, err)
	}

	fm.events <- types.Event{Type: "exit", MachineID: "m1", State: types.StateStopped}
	ectx, cancel := context.WithCancel(ctx)
	var got types.Event
	_ = c.Events(ectx, "web", "", func(e types.Event) error { got = e; cancel(); return nil })
	if got.Type != "exit" {
		t.Fatalf("event = %+v", got)
	}

	if err := c.DestroyMachine(ctx, "web", "m1", true); err != nil {
		t.Fatal(err)
	}
}

func TestMachinesAPIBadJSONNamesField(t *testing.T) {
	s := NewServer(nil)
	RegisterMachines(s, newFakeMachines())
	for body, field := range map[string]string{
		`{"config":{"image":"x","guest":{"memory_mb":"lots"}}}`:     "memory_mb",
		`{"config":{"image":"x","restart":{"policy":"sometimes"}}}`: "restart.policy",
		`{"config":{"image":"x"},"bogus":1}`:                        "bogus",
		`{"config":{"image":"x","guest":{"memory_mb":-5}}}`:         "guest.memory_mb",
	} {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/apps/a/machines", strings.NewReader(body)))
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), field) || !strings.Contains(rec.Body.String(), `"code":"invalid_argument"`) {
			t.Errorf("%s: %d %s", body, rec.Code, rec.Body.String())
		}
	}
}

// FuzzMachineRequests feeds arbitrary bodies to the decoding handlers: they
// must answer (2xx or 4xx), never panic or 5xx.
func FuzzMachineRequests(f *testing.F) {
	for _, s := range []string{`{"config":{"image":"x"}}`, `{"signal":"TERM","timeout":"5s"}`, `{"cmd":["sh"],"tty":true}`,
		`{"config":{"image":"x","services":[{"internal_port":80,"ports":[{"port":8080}]}],"restart":{"policy":"on-failure","max_retries":2}}}`,
		`{"name":"n"}`, `[]`, `null`, `{"config":{"image":"x","env":{"":"1"}}}`} {
		f.Add(s)
	}
	s := NewServer(nil)
	fm := newFakeMachines()
	RegisterMachines(s, fm)
	f.Fuzz(func(t *testing.T, body string) {
		fm.ms["m1"] = &types.Machine{ID: "m1", App: "a", State: types.StateStarted}
		for _, p := range []string{"/v1/apps/a/machines", "/v1/apps/a/machines/m1", "/v1/apps/a/machines/m1/stop",
			"/v1/apps/a/machines/m1/signal", "/v1/apps/a/machines/m1/rename", "/v1/apps/a/machines/m1/exec"} {
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, httptest.NewRequest("POST", p, strings.NewReader(body)))
			if rec.Code >= 500 {
				t.Fatalf("POST %s %q: %d %s", p, body, rec.Code, rec.Body.String())
			}
		}
	})
}

// TestLogLineBytes: a line that is not UTF-8 crosses NDJSON unchanged.
func TestLogLineBytes(t *testing.T) {
	for _, data := range []string{"plain\n", "bad \xff\xfe utf-8\n", ""} {
		b, err := json.Marshal(types.NewLogLine([]byte(data), "stdout", logTime))
		if err != nil {
			t.Fatal(err)
		}
		var l types.LogLine
		if err := json.Unmarshal(b, &l); err != nil || string(l.Raw()) != data || !l.Time.Equal(logTime) {
			t.Errorf("%q → %s → %q %v", data, b, l.Raw(), err)
		}
	}
}
