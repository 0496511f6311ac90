package machine

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/guest"
)

// checks makes w's guests answer each exec with the next exit code sent on
// the returned channel (a negative code: never answer), printing argv and
// a long tail.
func checks(w *world) (chan int, func() [][]string) {
	codes := make(chan int)
	var mu sync.Mutex
	var argvs [][]string
	w.run = func(req guest.ExecRequest, io guest.ExecIO) guest.ExitStatus {
		mu.Lock()
		argvs = append(argvs, req.Argv)
		mu.Unlock()
		code := <-codes
		if code < 0 {
			select {}
		}
		fmt.Fprintf(io.Stdout, "%v %s", req.Argv, strings.Repeat("x", 10000))
		return guest.ExitStatus{Code: code}
	}
	return codes, func() [][]string { mu.Lock(); defer mu.Unlock(); return append([][]string(nil), argvs...) }
}

func healthOf(t *testing.T, m *Manager, id string) types.Health {
	t.Helper()
	mc, err := m.Get("", id)
	if err != nil {
		t.Fatal(err)
	}
	if mc.Health == nil {
		t.Fatalf("machine %s has no health", id)
	}
	return *mc.Health
}

// step answers one check with code and waits until its result is logged.
func step(t *testing.T, m *Manager, id string, codes chan int, code int) types.Health {
	t.Helper()
	last := func(h types.Health) time.Time {
		if len(h.Log) == 0 {
			return time.Time{}
		}
		return h.Log[len(h.Log)-1].End
	}
	before := last(healthOf(t, m, id))
	codes <- code
	var h types.Health
	eventually(t, "check logged", func() bool { h = healthOf(t, m, id); return !last(h).Equal(before) })
	return h
}

func TestHealthRetriesThenRecovers(t *testing.T) {
	w := newWorld()
	w.hold = true
	codes, argvs := checks(w)
	m := newManager(t, w, t.TempDir())
	events, cancel := m.Subscribe("", "")
	defer cancel()
	mc, err := m.Create(ctx, "", types.CreateRequest{Name: "db", Config: types.Config{Image: "busybox",
		Healthcheck: &types.Healthcheck{Test: []string{"CMD-SHELL", "pg_isready"}, Interval: time.Millisecond, Retries: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	if h := healthOf(t, m, mc.ID); h.Status != types.HealthStarting {
		t.Fatalf("new machine health = %+v", h)
	}
	for i := 1; i <= 2; i++ {
		if h := step(t, m, mc.ID, codes, 1); h.Status != types.HealthStarting || h.FailingStreak != i {
			t.Fatalf("after %d failures: %+v", i, h)
		}
	}
	h := step(t, m, mc.ID, codes, 1)
	if h.Status != types.HealthUnhealthy || h.FailingStreak != 3 {
		t.Fatalf("after 3 failures: %+v", h)
	}
	last := h.Log[len(h.Log)-1]
	if last.ExitCode != 1 || len(last.Output) != maxHealthOutput || !strings.HasPrefix(last.Output, "[/bin/sh -c pg_isready]") || last.End.Before(last.Start) {
		t.Fatalf("last result = %d %.40q (%d bytes)", last.ExitCode, last.Output, len(last.Output))
	}
	h = step(t, m, mc.ID, codes, 0)
	if h.Status != types.HealthHealthy || h.FailingStreak != 0 {
		t.Fatalf("after a pass: %+v", h)
	}
	for range 4 {
		h = step(t, m, mc.ID, codes, 0)
	}
	if len(h.Log) != maxHealthLog {
		t.Fatalf("log keeps %d results, want %d", len(h.Log), maxHealthLog)
	}
	if got := argvs()[0]; strings.Join(got, " ") != "/bin/sh -c pg_isready" {
		t.Fatalf("argv = %q", got)
	}
	var statuses []string
	for len(statuses) < 2 {
		select {
		case e := <-events:
			if e.Type == "health_status" {
				statuses = append(statuses, e.Status)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("health events = %v", statuses)
		}
	}
	if strings.Join(statuses, ",") != "unhealthy,healthy" {
		t.Fatalf("health events = %v", statuses)
	}

	// Stopping the machine ends the checker: no health, no more checks.
	go func() {
		for {
			select {
			case codes <- 0:
			case <-time.After(time.Second):
				return
			}
		}
	}()
	if _, err := m.Stop(ctx, "", mc.ID, StopOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Get("", mc.ID); got.Health != nil {
		t.Fatalf("stopped machine health = %+v", got.Health)
	}
	n := len(argvs())
	time.Sleep(50 * time.Millisecond)
	if len(argvs()) != n {
		t.Fatalf("checks ran after stop: %d then %d", n, len(argvs()))
	}
}

func TestHealthStartPeriod(t *testing.T) {
	w := newWorld()
	w.hold = true
	codes, _ := checks(w)
	m := newManager(t, w, t.TempDir())
	mc, err := m.Create(ctx, "", types.CreateRequest{Config: types.Config{Image: "busybox", Healthcheck: &types.Healthcheck{
		Test: []string{"CMD", "check"}, Interval: time.Millisecond, StartInterval: time.Millisecond, StartPeriod: time.Hour, Retries: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if h := step(t, m, mc.ID, codes, 1); h.Status != types.HealthStarting || h.FailingStreak != 0 {
			t.Fatalf("failure in the start period counted: %+v", h)
		}
	}
	if h := step(t, m, mc.ID, codes, 0); h.Status != types.HealthHealthy {
		t.Fatalf("after a pass: %+v", h)
	}
	// Once a check passed, the start period is over.
	if h := step(t, m, mc.ID, codes, 1); h.Status != types.HealthUnhealthy || h.FailingStreak != 1 {
		t.Fatalf("failure after the first pass: %+v", h)
	}
}

func TestHealthTimeout(t *testing.T) {
	w := newWorld()
	w.hold = true
	codes, _ := checks(w)
	m := newManager(t, w, t.TempDir())
	mc, err := m.Create(ctx, "", types.CreateRequest{Config: types.Config{Image: "busybox", Healthcheck: &types.Healthcheck{
		Test: []string{"CMD", "hang"}, Interval: time.Millisecond, Timeout: 20 * time.Millisecond, Retries: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	go func() { codes <- -1 }()
	var h types.Health
	eventually(t, "timed-out check", func() bool { h = healthOf(t, m, mc.ID); return len(h.Log) > 0 })
	if r := h.Log[0]; r.ExitCode != -1 || r.Output != "Health check exceeded timeout (20ms)" || h.Status != types.HealthUnhealthy {
		t.Fatalf("timed-out check: %+v", h)
	}
}

func TestHealthFromImageAndDisabled(t *testing.T) {
	w := newWorld()
	w.hold = true
	codes, argvs := checks(w)
	m := newManager(t, w, t.TempDir())
	off, err := m.Create(ctx, "", types.CreateRequest{Config: types.Config{Image: "with-health", Healthcheck: &types.Healthcheck{Test: []string{"NONE"}}}})
	if err != nil {
		t.Fatal(err)
	}
	mc, err := m.Create(ctx, "", types.CreateRequest{Config: types.Config{Image: "with-health"}})
	if err != nil {
		t.Fatal(err)
	}
	if hc := mc.ImageConfig.Healthcheck; hc == nil || strings.Join(hc.Test, " ") != "CMD check" {
		t.Fatalf("image healthcheck = %+v", hc)
	}
	if h := step(t, m, mc.ID, codes, 0); h.Status != types.HealthHealthy {
		t.Fatalf("image's check: %+v", h)
	}
	if got, _ := m.Get("", off.ID); got.Health != nil {
		t.Fatalf("disabled check runs: %+v", got.Health)
	}
	for _, a := range argvs() {
		if strings.Join(a, " ") != "check" {
			t.Fatalf("argv = %q", a)
		}
	}

	// After a daemon restart the adopted machine is checked again.
	dir := m.opt.MachinesDir[:len(m.opt.MachinesDir)-len("/machines")]
	m.Close()
	m.st.db.Close()
	m2 := newManager(t, w, dir)
	if err := m2.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if h := healthOf(t, m2, mc.ID); h.Status != types.HealthStarting {
		t.Fatalf("adopted machine health = %+v", h)
	}
	if h := step(t, m2, mc.ID, codes, 1); h.Status != types.HealthUnhealthy {
		t.Fatalf("adopted machine after a failure: %+v", h)
	}
}

func TestEffectiveHealthcheck(t *testing.T) {
	img := &types.Healthcheck{Test: []string{"CMD", "a"}, Interval: time.Second, Retries: 5}
	h := effectiveHealthcheck(&types.Healthcheck{Timeout: 2 * time.Second}, img)
	if strings.Join(h.Test, " ") != "CMD a" || h.Interval != time.Second || h.Timeout != 2*time.Second || h.Retries != 5 || h.StartInterval != defaultHealthStartInterval {
		t.Fatalf("merged = %+v", h)
	}
	if h := effectiveHealthcheck(nil, nil); h != nil {
		t.Fatalf("no check = %+v", h)
	}
	if h := effectiveHealthcheck(&types.Healthcheck{Test: []string{"NONE"}}, img); h != nil {
		t.Fatalf("NONE = %+v", h)
	}
	if h := effectiveHealthcheck(&types.Healthcheck{Test: []string{"CMD-SHELL", "b"}}, nil); h.Interval != defaultHealthInterval || h.Retries != defaultHealthRetries {
		t.Fatalf("defaults = %+v", h)
	}
	for _, bad := range []types.Healthcheck{{Test: []string{"CMD"}}, {Test: []string{"SHELL", "x"}}, {Retries: -1}, {Interval: time.Nanosecond}} {
		c := types.Config{Image: "x", Healthcheck: &bad}
		if err := ValidateConfig(&c); err == nil || !strings.Contains(err.Error(), "config.healthcheck") {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

// A check the guest refuses because it has not started the entrypoint yet
// (still booting) is not a failure: it is neither logged nor counted.
func TestHealthWaitsForBoot(t *testing.T) {
	w := newWorld()
	w.hold = true
	w.refuse, _ = refusing(2, guest.ReasonNotBooted) // then the failures below
	var mu sync.Mutex
	calls := 0
	w.run = func(req guest.ExecRequest, io guest.ExecIO) guest.ExitStatus {
		mu.Lock()
		defer mu.Unlock()
		if calls++; calls <= 3 {
			return guest.ExitStatus{Failure: &guest.Failure{Reason: guest.ReasonNotBooted, Message: "exec: the machine has not finished booting"}}
		}
		fmt.Fprint(io.Stdout, "up")
		return guest.ExitStatus{Code: 0}
	}
	m := newManager(t, w, t.TempDir())
	mc, err := m.Create(ctx, "", types.CreateRequest{Config: types.Config{Image: "busybox", Healthcheck: &types.Healthcheck{
		Test: []string{"CMD", "check"}, Interval: time.Millisecond, Retries: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	var h types.Health
	eventually(t, "a check after boot", func() bool { h = healthOf(t, m, mc.ID); return len(h.Log) > 0 })
	if h.Status != types.HealthHealthy || h.Log[0].ExitCode != 0 || h.Log[0].Output != "up" {
		t.Fatalf("health after refused checks: %+v", h)
	}
}

// A machine recorded started before its run is tracked already shows its
// check as starting (never no health, then health).
func TestHealthStartingBeforeTracked(t *testing.T) {
	m := newManager(t, newWorld(), t.TempDir())
	hc := &types.Healthcheck{Test: []string{"CMD", "check"}}
	m.mu.Lock()
	defer m.mu.Unlock()
	if h := m.withHealth(&types.Machine{ID: "untracked", State: types.StateStarted, Config: types.Config{Healthcheck: hc}}).Health; h == nil || h.Status != types.HealthStarting {
		t.Fatalf("untracked started machine with a check: health %+v", h)
	}
	if h := m.withHealth(&types.Machine{ID: "untracked", State: types.StateStarted, ImageConfig: types.ImageConfig{Healthcheck: hc}}).Health; h == nil {
		t.Fatal("untracked started machine with the image's check: no health")
	}
	for _, mc := range []*types.Machine{
		{ID: "untracked", State: types.StateStarted},
		{ID: "untracked", State: types.StateStopped, Config: types.Config{Healthcheck: hc}},
		{ID: "untracked", State: types.StateStarted, Config: types.Config{Healthcheck: &types.Healthcheck{Test: []string{"NONE"}}}, ImageConfig: types.ImageConfig{Healthcheck: hc}},
	} {
		if h := m.withHealth(mc).Health; h != nil {
			t.Errorf("%s machine, config %+v: health %+v, want none", mc.State, mc.Config.Healthcheck, h)
		}
	}
}
