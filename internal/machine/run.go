package machine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
)

// run is one live VMM of a machine and the goroutines watching it.
type run struct {
	proc Process
	vm   VM

	mu        sync.Mutex
	ctl       Control
	pre       Control       // connected before the run began (a warm start); taken by connect
	ctlReady  chan struct{} // closed once ctl is connected or given up on
	guestExit *types.Exit   // what the control channel reported
	failure   string        // why init could not start the entrypoint (a mount, the user, ...)
	waitDone  chan struct{} // closed when the control Wait returned
	health    *health       // the health checker's state; nil: no check

	done chan struct{} // closed when the VMM has exited; exit is then set
	exit *types.Exit

	cancel context.CancelFunc
}

func newRun(proc Process, vm VM) *run {
	return &run{proc: proc, vm: vm, ctlReady: make(chan struct{}), waitDone: make(chan struct{}), done: make(chan struct{})}
}

// control returns the connected control channel, or nil.
func (r *run) control() Control {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ctl
}

// waitControl waits until the control channel is connected (or given up
// on) and returns it.
func (r *run) waitControl(ctx context.Context) (Control, error) {
	select {
	case <-r.ctlReady:
	case <-r.done:
		return nil, fmt.Errorf("machine stopped: %w", errdefs.ErrConflict)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if c := r.control(); c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("the guest's control channel is not available: %w", errdefs.ErrUnavailable)
}

func (r *run) closeControl() {
	if r.cancel != nil {
		r.cancel()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctl != nil {
		_ = r.ctl.Close()
	}
}

// supervise watches r until its VMM exits, then hands the exit to onExit.
// Started once per run; the daemon's context ending leaves the VMM running.
func (m *Manager) supervise(ctx context.Context, id string, r *run) {
	defer m.wg.Done()
	defer r.cancel()

	go m.connect(ctx, id, r)
	err := r.proc.Wait(ctx)
	if ctx.Err() != nil {
		return // daemon shutting down (or run replaced): the VMM lives on
	}
	if err != nil {
		m.log.Debug("vmm wait", "machine", id, "err", err)
	}
	// Give the control channel a moment to deliver the exit it may have.
	select {
	case <-r.waitDone:
	case <-time.After(time.Second):
	}
	r.mu.Lock()
	exit := r.guestExit
	r.mu.Unlock()
	if exit == nil {
		if s, ok := guest.ConsoleExit(r.vm.Spec.ConsoleLog); ok {
			exit = exitFromGuest(s)
		}
	}
	if exit == nil {
		exit = &types.Exit{ExitCode: 255, Unknown: true}
	}
	if exit.ExitedAt.IsZero() {
		exit.ExitedAt = time.Now().UTC()
	}
	r.exit = exit
	close(r.done)
	m.onExit(id, r)
}

// connect dials the control channel until it answers, the VMM exits or
// the boot timeout passes (then the VMM is killed: a guest that never
// reports ready is a failed boot).
func (m *Manager) connect(ctx context.Context, id string, r *run) {
	defer func() {
		select {
		case <-r.ctlReady:
		default:
			close(r.ctlReady)
		}
	}()
	deadline := time.Now().Add(m.opt.BootTimeout)
	for {
		ctl, err := r.pre, error(nil)
		if r.pre != nil {
			r.pre = nil
		} else {
			ctl, err = m.deps.Hypervisor.Connect(ctx, r.vm)
		}
		if err == nil {
			r.mu.Lock()
			r.ctl = ctl
			r.mu.Unlock()
			close(r.ctlReady)
			st, werr := ctl.Wait(ctx)
			r.mu.Lock()
			if werr == nil {
				r.guestExit = exitFromGuest(st)
				if st.Failure != nil {
					r.failure = st.Failure.Message
				}
			}
			r.mu.Unlock()
			close(r.waitDone)
			return
		}
		if errors.Is(err, errors.ErrUnsupported) {
			close(r.waitDone)
			return
		}
		select {
		case <-ctx.Done():
			close(r.waitDone)
			return
		case <-r.done:
			close(r.waitDone)
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.log.Warn("guest never reported ready; killing its VMM", "machine", id, "timeout", m.opt.BootTimeout, "err", err)
			r.mu.Lock()
			r.guestExit = &types.Exit{ExitCode: 255, Unknown: true}
			r.mu.Unlock()
			close(r.waitDone)
			_ = r.proc.Kill()
			return
		}
	}
}

// onExit records a VMM's exit that no operation asked for, and applies the
// restart policy or auto_destroy.
func (m *Manager) onExit(id string, r *run) {
	mc, ok := m.acquireWait(id, "exit")
	if !ok {
		return
	}
	defer m.releaseBusy(id)
	m.mu.Lock()
	current := m.runs[id] == r
	if current {
		delete(m.runs, id)
	}
	m.mu.Unlock()
	if !current {
		return // a stop, restart or destroy already handled it
	}
	r.closeControl()
	ctx := m.ctx
	if err := m.releaseNetwork(ctx, id); err != nil {
		m.log.Warn("release network", "machine", id, "err", err)
	}
	exit := *r.exit
	exit.RequestedStop = exit.RequestedStop || mc.StopRequested
	mc.State, mc.LastExit, mc.PID, mc.Network, mc.StopRequested = types.StateStopped, &exit, 0, nil, false
	r.mu.Lock()
	mc.Error = r.failure
	r.mu.Unlock()
	if err := m.save(mc, "exit", exitStatus(&exit)); err != nil {
		m.log.Error("record exit", "machine", id, "err", err)
		return
	}
	switch {
	case m.shouldRestart(mc, &exit):
		m.restartLater(id, restartDelay(mc.Restarts))
	case mc.Config.AutoDestroy:
		if err := m.destroyLocked(ctx, mc, true); err != nil {
			m.log.Warn("auto destroy", "machine", id, "err", err)
		}
	}
}

// restartDelay is Docker's back-off between policy restarts: 100 ms,
// doubling with each consecutive restart, at most 10 s.
func restartDelay(restarts int) time.Duration {
	d := 100 * time.Millisecond
	for range min(restarts, 7) {
		d *= 2
	}
	return min(d, 10*time.Second)
}

// restartLater restarts a machine by policy after delay, unless it was
// started, stopped on request or destroyed meanwhile.
func (m *Manager) restartLater(id string, delay time.Duration) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		select {
		case <-time.After(delay):
		case <-m.ctx.Done():
			return
		}
		mc, ok := m.acquireWait(id, "exit")
		if !ok {
			return
		}
		defer m.releaseBusy(id)
		if mc.State != types.StateStopped || mc.LastExit == nil || !m.shouldRestart(mc, mc.LastExit) {
			return
		}
		mc.Restarts++
		m.log.Info("restarting by policy", "machine", id, "policy", mc.Config.Restart.String(), "restart", mc.Restarts)
		if err := m.startLocked(m.ctx, mc, "restart"); err != nil {
			m.log.Warn("restart by policy failed", "machine", id, "err", err)
		}
	}()
}

// shouldRestart applies the restart policy to an exit.
func (m *Manager) shouldRestart(mc *types.Machine, e *types.Exit) bool {
	if e.RequestedStop || m.ctx.Err() != nil {
		return false
	}
	switch mc.Config.Restart.Policy {
	case types.RestartAlways:
		return true
	case types.RestartOnFailure:
		return failed(e) && (mc.Config.Restart.MaxRetries == 0 || mc.Restarts < mc.Config.Restart.MaxRetries)
	}
	return false
}

func exitStatus(e *types.Exit) string {
	switch {
	case e.Unknown:
		return "vmm exited without an exit status"
	case e.OOMKilled:
		return "out of memory"
	case e.Signal != 0:
		return fmt.Sprintf("killed by signal %d", e.Signal)
	}
	return fmt.Sprintf("exit code %d", e.ExitCode)
}
