package machine

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/guest"
)

// Health checks, as Docker runs them: the daemon execs the machine's
// effective check (its config's over its image's HEALTHCHECK) in the guest
// every interval (every start interval during the start period). A check
// that exits 0 makes the machine healthy and resets the failing streak; any
// other exit, or a check past its timeout, adds to the streak, and retries
// failures in a row make it unhealthy. Failures in the start period do not
// count until a check has passed. Each status change is a "health_status"
// event. The checker lives with the run (track starts it, the VMM's exit
// ends it), so an adopted machine gets one again after a daemon restart.

// Docker's defaults and limits.
const (
	defaultHealthInterval      = 30 * time.Second
	defaultHealthTimeout       = 30 * time.Second
	defaultHealthStartInterval = 5 * time.Second
	defaultHealthRetries       = 3
	maxHealthLog               = 5
	maxHealthOutput            = 4096
)

// health is one run's checker state.
type health struct {
	mu    sync.Mutex
	state types.Health
}

func (h *health) view() *types.Health {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.state
	out.Log = cloneSlice(h.state.Log)
	return &out
}

// effectiveHealthcheck merges a machine's check over its image's and fills
// Docker's defaults; nil means the machine has none.
func effectiveHealthcheck(cfg, img *types.Healthcheck) *types.Healthcheck {
	if cfg.Disabled() {
		return nil
	}
	var h types.Healthcheck
	if img != nil && !img.Disabled() {
		h = *img
	}
	if cfg != nil {
		if len(cfg.Test) > 0 {
			h.Test = cfg.Test
		}
		h.Interval, h.Timeout = or(cfg.Interval, h.Interval), or(cfg.Timeout, h.Timeout)
		h.StartPeriod, h.StartInterval = or(cfg.StartPeriod, h.StartPeriod), or(cfg.StartInterval, h.StartInterval)
		h.Retries = or(cfg.Retries, h.Retries)
	}
	if len(h.Test) < 2 || (h.Test[0] != "CMD" && h.Test[0] != "CMD-SHELL") {
		return nil
	}
	h.Test = cloneSlice(h.Test)
	h.Interval, h.Timeout = or(h.Interval, defaultHealthInterval), or(h.Timeout, defaultHealthTimeout)
	h.StartInterval, h.Retries = or(h.StartInterval, defaultHealthStartInterval), or(h.Retries, defaultHealthRetries)
	return &h
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// healthArgv is the argv a check's test runs.
func healthArgv(test []string) []string {
	if test[0] == "CMD-SHELL" {
		return []string{"/bin/sh", "-c", test[1]}
	}
	return cloneSlice(test[1:])
}

// healthcheckOf is the API's view of an image's HEALTHCHECK.
func healthcheckOf(h *v1.HealthConfig) *types.Healthcheck {
	if h == nil || len(h.Test) == 0 {
		return nil
	}
	return &types.Healthcheck{Test: cloneSlice(h.Test), Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
}

func cloneHealthcheck(h *types.Healthcheck) *types.Healthcheck {
	if h == nil {
		return nil
	}
	out := *h
	out.Test = cloneSlice(h.Test)
	return &out
}

// startHealth starts r's checker when machine id has a check; m.mu not held.
func (m *Manager) startHealth(ctx context.Context, id string, r *run) {
	m.mu.Lock()
	mc, ok := m.machines[id]
	var hc *types.Healthcheck
	if ok {
		hc = effectiveHealthcheck(mc.Config.Healthcheck, mc.ImageConfig.Healthcheck)
	}
	m.mu.Unlock()
	if hc == nil {
		return
	}
	h := &health{state: types.Health{Status: types.HealthStarting}}
	r.mu.Lock()
	r.health = h
	r.mu.Unlock()
	m.wg.Add(1)
	go m.checkHealth(ctx, id, r, h, *hc)
}

// checkHealth runs hc against r until its VMM exits or ctx ends.
func (m *Manager) checkHealth(ctx context.Context, id string, r *run, h *health, hc types.Healthcheck) {
	defer m.wg.Done()
	started := time.Now()
	passed, booted := false, false
	for {
		wait := hc.Interval
		switch {
		case !booted:
			wait = min(hc.StartInterval, hc.Interval, time.Second)
		case !passed && time.Since(started) < hc.StartPeriod:
			wait = min(hc.StartInterval, hc.Interval)
		}
		select {
		case <-ctx.Done():
			return
		case <-r.done:
			return
		case <-time.After(wait):
		}
		res, refused := m.probe(ctx, r, hc)
		if ctx.Err() != nil {
			return
		}
		if refused {
			// The guest has not started the entrypoint yet (booting, or
			// waiting for an attach): not a check. The start period
			// counts from the first check the guest runs.
			continue
		}
		if !booted {
			booted, started = true, res.Start
		}
		inStart := !passed && res.Start.Sub(started) < hc.StartPeriod
		h.mu.Lock()
		before := h.state.Status
		h.state.Log = append(h.state.Log, res)
		if len(h.state.Log) > maxHealthLog {
			h.state.Log = h.state.Log[len(h.state.Log)-maxHealthLog:]
		}
		switch {
		case res.ExitCode == 0:
			passed = true
			h.state.Status, h.state.FailingStreak = types.HealthHealthy, 0
		case inStart:
			// A failure in the start period does not count.
		default:
			h.state.FailingStreak++
			if h.state.FailingStreak >= hc.Retries {
				h.state.Status = types.HealthUnhealthy
			}
		}
		after := h.state.Status
		h.mu.Unlock()
		if after != before {
			m.healthEvent(id, after)
		}
	}
}

// probe runs one check through the guest's exec; refused says the guest
// would not run it because it has not finished booting.
func (m *Manager) probe(ctx context.Context, r *run, hc types.Healthcheck) (res types.HealthResult, refused bool) {
	res = types.HealthResult{Start: time.Now().UTC(), ExitCode: -1}
	cctx, cancel := context.WithTimeout(ctx, hc.Timeout)
	defer cancel()
	out := &limitedBuffer{max: maxHealthOutput}
	c, err := r.waitControl(cctx)
	if err == nil {
		var st guest.ExitStatus
		st, err = c.Run(cctx, guest.ExecRequest{Argv: healthArgv(hc.Test)}, guest.ExecIO{Stdout: out, Stderr: out})
		if refusedNotBooted(st, err) {
			return res, true
		}
		if err == nil && st.Failure != nil {
			err = fmt.Errorf("%s", st.Failure.Message)
		}
		if err == nil {
			res.ExitCode = st.Code
		}
	}
	res.End = time.Now().UTC()
	res.Output = out.String()
	switch {
	case cctx.Err() == context.DeadlineExceeded:
		res.ExitCode, res.Output = -1, fmt.Sprintf("Health check exceeded timeout (%s)", hc.Timeout)
	case err != nil:
		res.ExitCode, res.Output = -1, err.Error()
	}
	return res, false
}

// healthEvent tells subscribers machine id's health changed. Like
// GuestViolation it is not kept in the machine's record.
func (m *Manager) healthEvent(id, status string) {
	m.mu.Lock()
	mc, ok := m.machines[id]
	var e types.Event
	if ok {
		e = types.Event{Type: "health_status", MachineID: id, App: mc.App, State: mc.State, Status: status, Time: time.Now().UTC()}
	}
	m.mu.Unlock()
	if ok {
		m.bus.publish(e)
	}
}

// withHealth sets out's Health from its live run; m.mu held. A started
// machine with a check whose checker is not up yet (a run is recorded
// started just before it is tracked) is starting: Docker shows a
// container's health from its start.
func (m *Manager) withHealth(out *types.Machine) *types.Machine {
	if out.State != types.StateStarted {
		return out
	}
	var h *health
	if r := m.runs[out.ID]; r != nil {
		r.mu.Lock()
		h = r.health
		r.mu.Unlock()
	}
	switch {
	case h != nil:
		out.Health = h.view()
	case effectiveHealthcheck(out.Config.Healthcheck, out.ImageConfig.Healthcheck) != nil:
		out.Health = &types.Health{Status: types.HealthStarting}
	}
	return out
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
