package machine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/vmm"
)

// Reconcile brings the recorded machines and the host back into agreement
// after a daemon start, whatever line the previous daemon died on:
//
//	created              nothing runs; make sure no network is held
//	starting             adopt the VMM if it came up, else undo and start again
//	started              adopt the VMM (pid file + start time + marker); if it
//	                     died, record its exit (console marker) and apply the
//	                     restart policy
//	stopping             finish the stop
//	stopped, failed      make sure nothing runs or is attached
//	destroying           finish the destroy
//
// Then it removes what no machine owns: VMM processes, TAPs and port rules,
// disks and leases, machine directories.
func (m *Manager) Reconcile(ctx context.Context) error {
	var errs []error
	var resume []func()
	for _, mc := range m.List("", true) {
		if _, ok := m.acquireWait(mc.ID, "reconcile"); !ok {
			continue
		}
		next, err := m.reconcileOne(ctx, mc)
		m.releaseBusy(mc.ID)
		if err != nil {
			errs = append(errs, fmt.Errorf("machine %s: %w", mc.ID, err))
		}
		if next != nil {
			resume = append(resume, next)
		}
	}
	if err := m.collectOrphans(ctx); err != nil {
		errs = append(errs, err)
	}
	// Starts and policy restarts run in the background: serving the API
	// must not wait for boots.
	for _, f := range resume {
		m.wg.Add(1)
		go func() { defer m.wg.Done(); f() }()
	}
	return errors.Join(errs...)
}

// reconcileOne settles one machine (busy held) and returns work to do
// once every machine is settled.
func (m *Manager) reconcileOne(ctx context.Context, mc *types.Machine) (func(), error) {
	vm := m.vm(mc)
	proc, aerr := m.deps.Hypervisor.Adopt(ctx, vm)
	alive := aerr == nil
	if aerr != nil && !errors.Is(aerr, errdefs.ErrNotFound) {
		m.log.Warn("adopt vmm", "machine", mc.ID, "err", aerr)
	}
	if interruptedRestore(vm.Spec.Dir) && alive {
		// A warm start cut off before its guest took its run config: the
		// VMM waits for one nobody will send. End it; the machine starts
		// again as one whose boot was cut off.
		m.log.Info("ending a restore a daemon restart interrupted", "machine", mc.ID, "pid", proc.PID())
		endProcess(ctx, proc)
		alive = false
	}
	switch mc.State {
	case types.StateStarting, types.StateStarted:
		if alive {
			mc.State, mc.PID, mc.Emulated, mc.Driver = types.StateStarted, proc.PID(), proc.Emulated(), proc.Driver()
			if mc.StartedAt.IsZero() {
				mc.StartedAt = time.Now().UTC()
			}
			vm.Driver = proc.Driver()
			r, rctx := m.register(mc.ID, proc, vm, nil)
			if err := m.save(mc, "adopt", fmt.Sprintf("re-adopted vmm pid %d", proc.PID())); err != nil {
				m.unregister(mc.ID, r)
				return nil, err
			}
			m.watch(rctx, mc.ID, r)
			return nil, nil
		}
		wasStarting := mc.State == types.StateStarting
		exit := m.recoverExit(vm.Spec)
		if err := m.releaseNetwork(ctx, mc.ID); err != nil {
			return nil, err
		}
		mc.State, mc.PID, mc.Network = types.StateStopped, 0, nil
		if !wasStarting {
			exit.RequestedStop = mc.StopRequested
			mc.LastExit = exit
		}
		mc.StopRequested = false
		if err := m.save(mc, "exit", "found stopped after a daemon restart: "+exitStatus(exit)); err != nil {
			return nil, err
		}
		if wasStarting || m.shouldRestart(mc, exit) {
			id := mc.ID
			return func() { m.resumeStart(id, !wasStarting) }, nil
		}
		if mc.Config.AutoDestroy {
			return nil, m.destroyLocked(ctx, mc, mc.Config.AutoDestroy)
		}
		return nil, nil
	case types.StateStopping:
		if alive {
			_ = proc.Kill()
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_ = proc.Wait(wctx)
			cancel()
		}
		exit := m.recoverExit(vm.Spec)
		exit.RequestedStop = true
		if err := m.releaseNetwork(ctx, mc.ID); err != nil {
			return nil, err
		}
		mc.State, mc.PID, mc.Network, mc.LastExit, mc.StopRequested = types.StateStopped, 0, nil, exit, false
		return nil, m.save(mc, "exit", "stop finished after a daemon restart")
	case types.StateDestroying:
		return nil, m.destroyLocked(ctx, mc, mc.Config.AutoDestroy)
	default: // created, stopped, failed
		if alive {
			_ = proc.Kill()
		}
		if mc.Network != nil || mc.PID != 0 {
			mc.Network, mc.PID = nil, 0
			if err := m.save(mc, "", ""); err != nil {
				return nil, err
			}
		}
		return nil, m.releaseNetwork(ctx, mc.ID)
	}
}

// recoverExit reads a dead VMM's exit off the tail of its console log.
func (m *Manager) recoverExit(spec vmm.Spec) *types.Exit {
	if s, ok := guest.ConsoleExit(spec.ConsoleLog); ok {
		return exitFromGuest(s)
	}
	return &types.Exit{ExitCode: 255, Unknown: true, ExitedAt: time.Now().UTC()}
}

// resumeStart starts a machine whose start a crash interrupted, or which
// its restart policy brings back.
func (m *Manager) resumeStart(id string, byPolicy bool) {
	mc, ok := m.acquireWait(id, "start")
	if !ok {
		return
	}
	defer m.releaseBusy(id)
	if mc.State != types.StateStopped {
		return
	}
	if byPolicy {
		mc.Restarts++
	}
	if err := m.startLocked(m.ctx, mc, "start"); err != nil {
		m.log.Warn("resume start after daemon restart", "machine", id, "err", err)
	}
}

// collectOrphans removes what belongs to no recorded machine.
func (m *Manager) collectOrphans(ctx context.Context) error {
	var known, running, keep []string
	m.mu.Lock()
	for id, mc := range m.machines {
		known = append(known, id)
		if mc.State == types.StateStarted || mc.State == types.StateStarting {
			running = append(running, id)
		}
		// A spare whose claim never finished (the daemon was killed): its
		// files go; taken at create and never started, its VMM is of no
		// run and is reaped (one cut off mid-claim is a restore the
		// restoring mark ends).
		if _, err := os.Stat(filepath.Join(m.dir(id), SpareName)); err == nil {
			removeSpareDrives(m.dir(id))
			if mc.State == types.StateCreated {
				continue
			}
		}
		keep = append(keep, id)
	}
	m.mu.Unlock()
	var errs []error
	if reaped, err := m.deps.Hypervisor.Reap(ctx, keep); err != nil {
		errs = append(errs, fmt.Errorf("reap orphan vmms: %w", err))
	} else if len(reaped) > 0 {
		m.log.Info("killed orphan vmms", "machines", reaped)
	}
	if m.deps.Network != nil {
		if err := m.deps.Network.Reconcile(ctx, running); err != nil {
			errs = append(errs, fmt.Errorf("reconcile network: %w", err))
		}
	}
	if err := m.deps.Rootfs.Reconcile(ctx, known); err != nil {
		errs = append(errs, fmt.Errorf("reconcile disks: %w", err))
	}
	if m.deps.Volumes != nil {
		if err := m.deps.Volumes.Reconcile(ctx, known, running); err != nil {
			errs = append(errs, fmt.Errorf("reconcile volumes: %w", err))
		}
	}
	entries, err := os.ReadDir(m.opt.MachinesDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	set := map[string]bool{}
	for _, id := range known {
		set[id] = true
	}
	for _, e := range entries {
		if !set[e.Name()] {
			if err := os.RemoveAll(m.dir(e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
