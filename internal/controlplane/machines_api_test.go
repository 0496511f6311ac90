package controlplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/logs"
	"github.com/ferryvm/ferry/internal/machine"
	"github.com/ferryvm/ferry/internal/registry/store/pgtest"
)

// fakeMachines is a host's machine manager in memory: what the host's
// real Machines API (internal/api) serves in these tests, and what the
// agent converges. Verbs it does not need panic (the nil interface).
type fakeMachines struct {
	api.MachineService
	mu sync.Mutex
	ms map[string]*types.Machine
}

func newFakeMachines() *fakeMachines { return &fakeMachines{ms: map[string]*types.Machine{}} }

func (f *fakeMachines) find(app, ref string) (*types.Machine, error) {
	for _, m := range f.ms {
		if m.App == app && (m.ID == ref || m.Name == ref) {
			return m, nil
		}
	}
	return nil, fmt.Errorf("no machine %s: %w", ref, errdefs.ErrNotFound)
}

func (f *fakeMachines) Create(_ context.Context, app string, req types.CreateRequest) (*types.Machine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.find(app, req.Name); err == nil || f.ms[req.ID] != nil {
		return nil, fmt.Errorf("%s exists: %w", req.Name, errdefs.ErrAlreadyExists)
	}
	if req.Config.Image == "missing" {
		return nil, fmt.Errorf("pull missing: no such image: %w", errdefs.ErrNotFound)
	}
	st := types.StateStarted
	if req.SkipLaunch {
		st = types.StateCreated
	}
	m := &types.Machine{ID: req.ID, Name: req.Name, App: app, State: st, Config: req.Config}
	f.ms[m.ID] = m
	c := *m
	return &c, nil
}

func (f *fakeMachines) List(app string, _ bool) []*types.Machine {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*types.Machine
	for _, m := range f.ms {
		if app == "" || m.App == app {
			c := *m
			out = append(out, &c)
		}
	}
	return out
}

func (f *fakeMachines) Get(app, ref string) (*types.Machine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.find(app, ref)
	if err != nil {
		return nil, err
	}
	c := *m
	return &c, nil
}

func (f *fakeMachines) Stop(_ context.Context, app, ref string, _ machine.StopOptions) (*types.Machine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.find(app, ref)
	if err != nil {
		return nil, err
	}
	m.State = types.StateStopped
	c := *m
	return &c, nil
}

func (f *fakeMachines) Destroy(_ context.Context, app, ref string, _ bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.find(app, ref)
	if err != nil {
		return err
	}
	delete(f.ms, m.ID)
	return nil
}

func (f *fakeMachines) DestroyWithVolumes(ctx context.Context, app, ref string, force, _ bool) error {
	return f.Destroy(ctx, app, ref, force)
}

func (f *fakeMachines) Logs(_ context.Context, app, ref string, _ machine.LogOptions, fn func(logs.Entry) error) error {
	if _, err := f.Get(app, ref); err != nil {
		return err
	}
	return fn(logs.Entry{Stream: logs.Stdout, Data: []byte("hello from " + ref + "\n")})
}

func (f *fakeMachines) ids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for id := range f.ms {
		out = append(out, id)
	}
	return out
}

// fakeHost serves a host's real Machines API over fm on TCP with token.
func fakeHost(t *testing.T, fm *fakeMachines, token string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := api.NewServer(quiet())
	api.RegisterMachines(s, fm)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ctx, ln, token) }()
	t.Cleanup(func() { cancel(); <-done })
	return "http://" + ln.Addr().String()
}

// controlPlane serves a control plane on dsn and returns its address.
func controlPlane(t *testing.T, dsn string, ttl time.Duration) (string, *Store) {
	t.Helper()
	st, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	srv, err := NewServer(st, "cp-token", ttl, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return "tcp://" + ln.Addr().String(), st
}

// TestMachinesAPIAcrossHosts: the Machines API on the control plane, as
// `ferry -H tcp://CP` uses it (the real API client), over two hosts
// serving the real host API: a create is placed and created on the host
// with the most memory free, under the control plane's ID and with the
// host's API token; list answers every host's machines with their HOST;
// inspect, logs, stop and rm reach the owning host; a host's refusal
// leaves nothing placed; what fits nowhere and a taken name get one line.
func TestMachinesAPIAcrossHosts(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	cp, st := controlPlane(t, dsn, time.Minute)
	fa, fb := newFakeMachines(), newFakeMachines()
	a := Host{ID: "host-a", Name: "alpha", Addr: fakeHost(t, fa, "tok-a"), APIToken: "tok-a",
		Size: Capacity{CPUs: 4, MemoryMB: 8192, DiskMB: 1000}, Free: Capacity{CPUs: 4, MemoryMB: 8000, DiskMB: 1000}}
	b := Host{ID: "host-b", Name: "beta", Addr: fakeHost(t, fb, "tok-b"), APIToken: "tok-b",
		Size: Capacity{CPUs: 4, MemoryMB: 8192, DiskMB: 1000}, Free: Capacity{CPUs: 4, MemoryMB: 4000, DiskMB: 1000}}
	for _, h := range []Host{a, b} {
		if _, err := st.Register(ctx, h, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	c, err := api.NewClient(cp, "cp-token")
	if err != nil {
		t.Fatal(err)
	}
	img := types.Config{Image: "busybox", Guest: types.Guest{CPUs: 1, MemoryMB: 3000}, Restart: types.Restart{Policy: types.RestartAlways}}
	w1, err := c.CreateMachine(ctx, "web", types.CreateRequest{Name: "w1", Config: img})
	if err != nil {
		t.Fatal(err)
	}
	if w1.Host != "alpha" || w1.State != types.StateStarted || !machine.ValidID(w1.ID) || fa.ms[w1.ID] == nil || fa.ms[w1.ID].Config.Metadata[PlacedKey] == "" {
		t.Fatalf("w1: %+v; host a has %v", w1, fa.ids())
	}
	// alpha has 5000 MiB free now, beta 4000: w2 goes to alpha again, w3
	// (alpha 2000) to beta.
	for _, n := range []string{"w2", "w3"} {
		if _, err := c.CreateMachine(ctx, "web", types.CreateRequest{Name: n, Config: img}); err != nil {
			t.Fatal(err)
		}
	}
	if len(fa.ids()) != 2 || len(fb.ids()) != 1 {
		t.Fatalf("placement: a %v b %v", fa.ids(), fb.ids())
	}
	list, err := c.ListMachines(ctx, "", true)
	if err != nil || len(list) != 3 || list[0].Name != "w1" || list[0].Host != "alpha" || list[2].Name != "w3" || list[2].Host != "beta" {
		t.Fatalf("list: %v %v", list, err)
	}
	got, err := c.GetMachine(ctx, "web", "w3")
	if err != nil || got.Host != "beta" || got.Name != "w3" {
		t.Fatalf("inspect w3: %+v %v", got, err)
	}
	var logs bytes.Buffer
	if err := c.MachineLogs(ctx, "web", w1.ID, api.LogsOptions{}, &logs); err != nil || logs.String() != "hello from "+w1.ID+"\n" {
		t.Fatalf("logs through the control plane: %q %v", logs.String(), err)
	}
	if m, err := c.StopMachine(ctx, "web", "w3", types.StopRequest{}); err != nil || m.State != types.StateStopped {
		t.Fatalf("stop w3: %+v %v", m, err)
	}
	if m, _ := st.Machine(ctx, "web", "w3"); m.Desired != "stopped" {
		t.Fatalf("desired after stop: %+v", m)
	}
	if err := c.DestroyMachine(ctx, "web", "w3", true); err != nil || len(fb.ids()) != 0 {
		t.Fatalf("rm w3: %v; host b has %v", err, fb.ids())
	}
	if _, err := st.Machine(ctx, "web", "w3"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("w3's record after rm: %v", err)
	}
	// A host's refusal comes back as it is and leaves no placement.
	_, err = c.CreateMachine(ctx, "web", types.CreateRequest{Name: "bad", Config: types.Config{Image: "missing"}})
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "no such image") {
		t.Fatalf("a host's refusal: %v", err)
	}
	if _, err := st.Machine(ctx, "web", "bad"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("a refused machine stays placed: %v", err)
	}
	if _, err := c.CreateMachine(ctx, "web", types.CreateRequest{Name: "huge", Config: types.Config{Image: "busybox", Guest: types.Guest{CPUs: 64}}}); !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "no live host has 64 CPUs") {
		t.Fatalf("a machine no host fits: %v", err)
	}
	if _, err := c.CreateMachine(ctx, "web", types.CreateRequest{Name: "w1", Config: img}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("a taken name: %v", err)
	}
	if _, err := c.InspectImage(ctx, "busybox"); err == nil || errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "keeps no images") {
		t.Fatalf("image inspect on the control plane: %v", err)
	}
	// A machine whose host is away: listed as unknown with its host, and
	// rm forgets it (the host destroys its copy when it converges).
	fb2 := Host{ID: "host-b", Name: "beta", Addr: "http://127.0.0.1:1", APIToken: "tok-b", Size: b.Size, Free: b.Free}
	if _, err := st.Register(ctx, fb2, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateMachine(ctx, "web", types.CreateRequest{Name: "w4", Config: img}); err == nil {
		t.Fatal("a create on an unreachable host succeeded")
	}
}

// TestAgentConverges: the agent converges its host's machines to the
// desired set under a live lease: a placed machine it lacks is created
// (with the control plane's ID), one placed elsewhere (moved while the
// host was away) is destroyed, the host's own machines are left alone,
// and a desired state of stopped stops the host's copy.
func TestAgentConverges(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	cp, st := controlPlane(t, dsn, 2*time.Second)
	fm := newFakeMachines()
	h := Host{ID: "host-c", Name: "gamma", Addr: fakeHost(t, fm, "tok-c"), APIToken: "tok-c",
		Size: Capacity{CPUs: 4, MemoryMB: 8192, DiskMB: 1000}, Free: Capacity{CPUs: 4, MemoryMB: 8000, DiskMB: 1000}}
	if _, err := st.Register(ctx, h, time.Minute); err != nil {
		t.Fatal(err)
	}
	cfg := &types.Config{Image: "busybox", Restart: types.Restart{Policy: types.RestartAlways}}
	// Placed while the agent is not running: nothing created it yet.
	p, err := st.PlaceMachine(ctx, MachineSpec{App: "web", Name: "w1", CPUs: 1, MemoryMB: 256, Restart: "always", Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	// A copy the host runs of a machine placed elsewhere since, and a
	// machine of the host's own.
	stale := Machine{ID: "00000000000001", App: "web", Name: "gone", Config: cfg, Desired: "started"}
	if _, err := fm.Create(ctx, "web", stale.CreateRequest()); err != nil {
		t.Fatal(err)
	}
	if _, err := fm.Create(ctx, "web", types.CreateRequest{ID: "00000000000002", Name: "local", Config: *cfg}); err != nil {
		t.Fatal(err)
	}
	a := &Agent{URL: "http://" + strings.TrimPrefix(cp, "tcp://"), Token: "cp-token", Host: h, Log: quiet(), Machines: fm}
	actx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(actx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the agent to converge", func() bool {
		fm.mu.Lock()
		defer fm.mu.Unlock()
		return fm.ms[p.ID] != nil && fm.ms[stale.ID] == nil
	})
	if fm.ms["00000000000002"] == nil || fm.ms[p.ID].Name != "w1" || fm.ms[p.ID].State != types.StateStarted {
		t.Fatalf("after converging: %v", fm.ms)
	}
	if err := st.SetDesired(ctx, p.ID, "stopped"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the agent to stop w1", func() bool {
		m, err := fm.Get("web", "w1")
		return err == nil && m.State == types.StateStopped
	})
	// Removed at the control plane: the host destroys its copy.
	if err := st.RemoveMachine(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the agent to destroy w1", func() bool { _, err := fm.Get("web", "w1"); return err != nil })
}
