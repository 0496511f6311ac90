package machine

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/network"
	"github.com/ferryvm/ferry/internal/vmm"
)

var ctx = context.Background()

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRunToExitAndDestroy(t *testing.T) {
	w := newWorld()
	w.exits = []int{3}
	m := newManager(t, w, t.TempDir())
	mc, err := m.Create(ctx, "", types.CreateRequest{Name: "web", Config: types.Config{Image: "busybox", Env: map[string]string{"A": "1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if mc.App != "default" || mc.State != types.StateStarted || mc.Version != 1 {
		t.Fatalf("created = %+v", mc)
	}
	got, err := m.Wait(ctx, "", "web", types.StateStopped, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got.LastExit == nil || got.LastExit.ExitCode != 3 || got.LastExit.RequestedStop {
		t.Fatalf("exit = %+v", got.LastExit)
	}
	eventually(t, "network released", func() bool { return w.inventory() == "disks=1 taps=0 vmms=0" })
	if err := m.Destroy(ctx, "", mc.ID[:6], false); err != nil {
		t.Fatal(err)
	}
	if inv := w.inventory(); inv != "disks=0 taps=0 vmms=0" {
		t.Fatalf("after destroy: %s", inv)
	}
	if _, err := m.Get("", mc.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("get destroyed: %v", err)
	}
}

func TestRestartOnFailureExactlyTwice(t *testing.T) {
	w := newWorld()
	w.exits = []int{1, 1, 1, 1, 1}
	m := newManager(t, w, t.TempDir())
	rp, err := types.ParseRestart("on-failure:2")
	if err != nil {
		t.Fatal(err)
	}
	mc, err := m.Create(ctx, "app", types.CreateRequest{Config: types.Config{Image: "busybox", Restart: rp}})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "three runs and a stop", func() bool {
		got, _ := m.Get("app", mc.ID)
		return got.State == types.StateStopped && got.Restarts == 2
	})
	time.Sleep(100 * time.Millisecond)
	w.mu.Lock()
	starts := w.starts
	w.mu.Unlock()
	if starts != 3 {
		t.Fatalf("starts = %d, want 3 (one run + two restarts)", starts)
	}
}

func TestStopIsRequestedAndNotRestarted(t *testing.T) {
	w := newWorld()
	w.hold = true
	m := newManager(t, w, t.TempDir())
	mc, err := m.Create(ctx, "", types.CreateRequest{Config: types.Config{Image: "busybox", Restart: types.Restart{Policy: types.RestartAlways}}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Stop(ctx, "", mc.Name, StopOptions{Signal: syscall.SIGINT})
	if err != nil {
		t.Fatal(err)
	}
	if out.State != types.StateStopped || !out.LastExit.RequestedStop || out.LastExit.Signal != int(syscall.SIGINT) {
		t.Fatalf("after stop: %+v exit %+v", out, out.LastExit)
	}
	time.Sleep(50 * time.Millisecond)
	if inv := w.inventory(); inv != "disks=1 taps=0 vmms=0" {
		t.Fatalf("after stop: %s", inv)
	}
	// start again, then destroy with force while it runs
	if _, err := m.Start(ctx, "", mc.ID); err != nil {
		t.Fatal(err)
	}
	if err := m.Destroy(ctx, "", mc.ID, false); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("destroy running without force: %v", err)
	}
	if err := m.Destroy(ctx, "", mc.ID, true); err != nil {
		t.Fatal(err)
	}
	if inv := w.inventory(); inv != "disks=0 taps=0 vmms=0" {
		t.Fatalf("after force destroy: %s", inv)
	}
}

func TestConcurrentOperationsConflict(t *testing.T) {
	w := newWorld()
	w.hold = true
	m := newManager(t, w, t.TempDir())
	mc, err := m.Create(ctx, "", types.CreateRequest{Config: types.Config{Image: "busybox"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.acquire(mc.ID, "stop"); err != nil {
		t.Fatal(err)
	}
	_, err = m.Restart(ctx, "", mc.ID, StopOptions{})
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "stop in progress") {
		t.Fatalf("want conflict naming the stop, got %v", err)
	}
	m.releaseBusy(mc.ID)
	if _, err := m.Restart(ctx, "", mc.ID, StopOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestNamesPrefixesRenameUpdate(t *testing.T) {
	w := newWorld()
	w.hold = true
	m := newManager(t, w, t.TempDir())
	a, err := m.Create(ctx, "", types.CreateRequest{Name: "a", Config: types.Config{Image: "busybox"}, SkipLaunch: true})
	if err != nil {
		t.Fatal(err)
	}
	if a.State != types.StateCreated {
		t.Fatalf("skip_launch state = %s", a.State)
	}
	if _, err := m.Create(ctx, "", types.CreateRequest{Name: "a", Config: types.Config{Image: "busybox"}}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("duplicate name: %v", err)
	}
	if _, err := m.Create(ctx, "other", types.CreateRequest{Name: "a", Config: types.Config{Image: "busybox"}, SkipLaunch: true}); err != nil {
		t.Fatalf("same name in another app: %v", err)
	}
	if _, err := m.Get("", "a"); err != nil {
		t.Fatal(err) // first match across apps
	}
	if _, err := m.Get("default", "nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := m.Rename(ctx, "", a.ID, "b"); err != nil {
		t.Fatal(err)
	}
	if got, err := m.Get("default", "b"); err != nil || got.ID != a.ID {
		t.Fatalf("renamed: %v %v", got, err)
	}
	cfg := a.Config
	cfg.Env = map[string]string{"V": "2"}
	up, err := m.Update(ctx, "", "b", cfg)
	if err != nil || up.Version != 2 {
		t.Fatalf("update: %+v %v", up, err)
	}
	vs, err := m.Versions("", "b")
	if err != nil || len(vs) != 2 || vs[1].Env["V"] != "2" {
		t.Fatalf("versions: %+v %v", vs, err)
	}
	if _, err := m.Create(ctx, "", types.CreateRequest{Config: types.Config{Image: "missing"}}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing image: %v", err)
	}
}

func TestFailedCreateLeavesNothing(t *testing.T) {
	w := newWorld()
	w.failVMM = errors.New("qemu exploded")
	m := newManager(t, w, t.TempDir())
	_, err := m.Create(ctx, "", types.CreateRequest{Config: types.Config{Image: "busybox"}})
	if err == nil || !strings.Contains(err.Error(), "qemu exploded") {
		t.Fatalf("create: %v", err)
	}
	if inv := w.inventory(); inv != "disks=0 taps=0 vmms=0" {
		t.Fatalf("after failed create: %s", inv)
	}
	if n := len(m.List("", true)); n != 0 {
		t.Fatalf("%d machines left", n)
	}
}

func TestExecAndEvents(t *testing.T) {
	w := newWorld()
	w.hold = true
	m := newManager(t, w, t.TempDir())
	events, cancel := m.Subscribe("", "")
	defer cancel()
	mc, err := m.Create(ctx, "", types.CreateRequest{Config: types.Config{Image: "busybox"}})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	code, err := m.Exec(ctx, "", mc.ID, types.ExecRequest{Cmd: []string{"echo", "x"}}, guest.ExecIO{Stdout: &out})
	if err != nil || code != 7 || out.String() != "[echo x]\n" {
		t.Fatalf("exec = %d %q %v", code, out.String(), err)
	}
	var types []string
	for len(types) < 3 {
		e := <-events
		types = append(types, e.Type+":"+string(e.State))
	}
	if strings.Join(types, " ") != "create:created start:starting started:started" {
		t.Fatalf("events = %v", types)
	}
}

// TestReconcileAfterCrash simulates a daemon killed with machines running,
// half started, being stopped and being destroyed, plus orphans.
func TestReconcileAfterCrash(t *testing.T) {
	w := newWorld()
	w.hold = true
	dir := t.TempDir()
	m := newManager(t, w, dir)
	running, _ := m.Create(ctx, "", types.CreateRequest{Name: "running", Config: types.Config{Image: "busybox"}})
	dying, _ := m.Create(ctx, "", types.CreateRequest{Name: "dying", Config: types.Config{Image: "busybox"}})
	halfStarted, _ := m.Create(ctx, "", types.CreateRequest{Name: "half", Config: types.Config{Image: "busybox"}, SkipLaunch: true})
	stopping, _ := m.Create(ctx, "", types.CreateRequest{Name: "stopping", Config: types.Config{Image: "busybox"}})
	died, _ := m.Create(ctx, "", types.CreateRequest{Name: "died", Config: types.Config{Image: "busybox", Restart: types.Restart{Policy: types.RestartAlways}}})
	m.Close() // the daemon dies; VMMs live on

	// Rewrite records as a crash would have left them.
	set := func(id string, s types.State) {
		mc := m.machines[id]
		mc.State = s
		if err := m.st.put(mc, "", false); err != nil {
			t.Fatal(err)
		}
	}
	set(dying.ID, types.StateDestroying)
	set(halfStarted.ID, types.StateStarting)
	set(stopping.ID, types.StateStopping)
	w.procs[died.ID].Kill() // died while the daemon was down
	eventually(t, "vmm gone", func() bool { _, err := w.Adopt(ctx, VM{Spec: vmm.Spec{ID: died.ID}}); return err != nil })
	w.mu.Lock()
	w.taps["orphan"], w.disks["orphan"] = true, true
	w.procs["orphan"] = &fakeProc{dead: make(chan struct{})}
	w.mu.Unlock()
	m.st.db.Close()

	m2 := newManager(t, w, dir)
	if err := m2.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	state := func(id string) types.State {
		mc, err := m2.Get("", id)
		if err != nil {
			return "gone"
		}
		return mc.State
	}
	if s := state(running.ID); s != types.StateStarted {
		t.Fatalf("running machine is %s", s)
	}
	if _, err := m2.Exec(ctx, "", running.ID, types.ExecRequest{Cmd: []string{"true"}}, guest.ExecIO{Stdout: &bytes.Buffer{}}); err != nil {
		t.Fatalf("exec after re-adoption: %v", err)
	}
	if s := state(dying.ID); s != "gone" {
		t.Fatalf("destroying machine is %s", s)
	}
	if s := state(stopping.ID); s != types.StateStopped {
		t.Fatalf("stopping machine is %s", s)
	}
	eventually(t, "half-started machine started", func() bool { return state(halfStarted.ID) == types.StateStarted })
	eventually(t, "died machine restarted by policy", func() bool { return state(died.ID) == types.StateStarted })
	w.mu.Lock()
	orphan := w.taps["orphan"] || w.disks["orphan"] || w.procs["orphan"] != nil
	w.mu.Unlock()
	if orphan {
		t.Fatal("orphan resources left")
	}
	if inv := w.inventory(); inv != "disks=4 taps=3 vmms=3" {
		t.Fatalf("inventory %s, want 4 machines with disks and 3 running", inv)
	}
}

func TestConfigValidate(t *testing.T) {
	for name, c := range map[string]types.Config{
		"no image":        {},
		"negative memory": {Image: "x", Guest: types.Guest{MemoryMB: -1}},
		"bad policy":      {Image: "x", Restart: types.Restart{Policy: "sometimes"}},
		"retries on no":   {Image: "x", Restart: types.Restart{Policy: "no", MaxRetries: 2}},
		"port twice":      {Image: "x", Services: []types.Service{{InternalPort: 80, Ports: []types.Port{{Port: 8080}}}, {InternalPort: 81, Ports: []types.Port{{Port: 8080}}}}},
		"bad port":        {Image: "x", Services: []types.Service{{InternalPort: 70000}}},
		"relative wd":     {Image: "x", Init: types.Init{WorkingDir: "tmp"}},
		"bad hostname":    {Image: "x", Hostname: "-x-"},
		"bad vmm":         {Image: "x", VMM: "xen"},
		"exec and cmd":    {Image: "x", Init: types.Init{Exec: []string{"a"}, Cmd: []string{"b"}}},
		"bad cgroup":      {Image: "x", Init: types.Init{CgroupVersion: "1"}},
		"bad host ip":     {Image: "x", Services: []types.Service{{InternalPort: 80, Ports: []types.Port{{Port: 8080, HostIP: "localhost"}}}}},
	} {
		t.Run(name, func(t *testing.T) {
			if err := ValidateConfig(&c); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("want invalid argument, got %v", err)
			}
		})
	}
	for in, want := range map[string]string{"": "no", "always": "always", "on-failure": "on-failure", "on-failure:3": "on-failure:3", "unless-stopped": "always"} {
		r, err := types.ParseRestart(in)
		if err != nil || r.String() != want {
			t.Fatalf("types.ParseRestart(%q) = %v, %v", in, r, err)
		}
	}
	for _, in := range []string{"always:2", "on-failure:-1", "never"} {
		if _, err := types.ParseRestart(in); err == nil {
			t.Fatalf("types.ParseRestart(%q) accepted", in)
		}
	}
}

// TestPublishedPortsReachTheNetwork: a service's host address, host port,
// protocol and guest port all reach Network.Attach, and the attachment's
// ports are what the machine records.
func TestPublishedPortsReachTheNetwork(t *testing.T) {
	w := newWorld()
	w.hold = true
	m := newManager(t, w, t.TempDir())
	cfg := types.Config{Image: "busybox", Services: []types.Service{
		{Protocol: "udp", InternalPort: 53, Ports: []types.Port{{Port: 5353, HostIP: "127.0.0.1"}}},
		{InternalPort: 80},
	}}
	mc, err := m.Create(ctx, "", types.CreateRequest{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	want := []network.Port{
		{Protocol: "udp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 5353, GuestPort: 53},
		{Protocol: "tcp", GuestPort: 80},
	}
	if !slices.Equal(w.ports, want) {
		t.Errorf("published %+v, want %+v", w.ports, want)
	}
	wantView := []types.PortMapping{{Protocol: "udp", HostIP: "127.0.0.1", HostPort: 5353, GuestPort: 53}, {Protocol: "tcp", GuestPort: 80}}
	if mc.Network == nil || !slices.Equal(mc.Network.Ports, wantView) || mc.IP() != "10.0.0.2" {
		t.Errorf("recorded network %+v", mc.Network)
	}
	if _, err := m.Stop(ctx, "", mc.ID, StopOptions{}); err != nil {
		t.Fatal(err)
	}
}

// A wait that ends before the state is reached is a timeout (ask again),
// not a failure of the daemon.
func TestWaitTimesOut(t *testing.T) {
	w := newWorld()
	w.hold = true // runs until signalled
	m := newManager(t, w, t.TempDir())
	if _, err := m.Create(ctx, "", types.CreateRequest{Name: "long", Config: types.Config{Image: "busybox"}}); err != nil {
		t.Fatal(err)
	}
	_, err := m.Wait(ctx, "", "long", types.StateStopped, 50*time.Millisecond)
	if !errors.Is(err, errdefs.ErrTimeout) || errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("wait on a running machine = %v, want a timeout", err)
	}
	if err := m.Destroy(ctx, "", "long", true); err != nil {
		t.Fatal(err)
	}
}
