package machine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/network"
	"github.com/ferryvm/ferry/internal/rootfs"
	"github.com/ferryvm/ferry/internal/vmm"
)

// Create records a new machine, prepares its disks and (unless SkipLaunch)
// starts it. A failure leaves nothing behind: no record, disk, lease, TAP
// or VMM.
func (m *Manager) Create(ctx context.Context, app string, req types.CreateRequest) (*types.Machine, error) {
	if app == "" {
		app = "default"
	}
	if !ValidName(app) {
		return nil, fmt.Errorf("app %q: use letters, digits, '.', '_' and '-': %w", app, errdefs.ErrInvalidArgument)
	}
	if req.Name != "" && !ValidName(req.Name) {
		return nil, fmt.Errorf("name %q: use letters, digits, '.', '_' and '-': %w", req.Name, errdefs.ErrInvalidArgument)
	}
	id := newID()
	if req.ID != "" {
		if !ValidID(req.ID) {
			return nil, fmt.Errorf("machine id %q: want 14 lowercase hex digits: %w", req.ID, errdefs.ErrInvalidArgument)
		}
		id = req.ID
	}
	cfg := cloneConfig(req.Config)
	if err := ValidateConfig(&cfg); err != nil {
		return nil, err
	}
	if cfg.VMM == "" {
		cfg.VMM = m.opt.DefaultVMM
	}
	img, err := m.resolveImage(ctx, cfg.Image)
	if err != nil {
		return nil, err
	}
	withImageVolumes(&cfg, img.Volumes)
	bindsNeedQEMU(&cfg)
	if err := m.checkBinds(ctx, cfg); err != nil {
		return nil, err
	}
	if req.ID == "" {
		// A machine created to start later (docker create, then start)
		// keeps its spare until it starts or is destroyed.
		if sp := m.takeSpare(cfg); sp != nil {
			id = sp.id
			if !req.SkipLaunch {
				defer m.dropSpare(id) // when its start did not claim it
			}
		}
	}
	now := time.Now().UTC()
	mc := &types.Machine{ID: id, Name: req.Name, App: app, State: types.StateCreated, Config: cfg, Version: 1,
		ImageRef: types.ImageRef{Ref: img.Ref, Digest: img.Digest}, ImageConfig: imageConfigView(img.Config), CreatedAt: now}
	mc.ImageConfig.Healthcheck = cloneHealthcheck(img.Healthcheck)

	// Reserve ID and name in memory, busy, before anything is written.
	m.mu.Lock()
	if _, taken := m.machines[mc.ID]; taken {
		m.mu.Unlock()
		return nil, fmt.Errorf("machine id %s is already used: %w", mc.ID, errdefs.ErrAlreadyExists)
	}
	for mc.Name == "" || m.nameTaken(app, mc.Name) {
		if req.Name != "" {
			m.mu.Unlock()
			return nil, fmt.Errorf("name %q is already used in app %s: %w", req.Name, app, errdefs.ErrAlreadyExists)
		}
		mc.Name = randomName()
	}
	m.machines[mc.ID] = cloneMachine(mc)
	m.busy[mc.ID] = "create"
	m.mu.Unlock()
	defer m.releaseBusy(mc.ID)

	if err := m.attachVolumes(ctx, mc); err != nil {
		if rerr := m.releaseVolumes(context.WithoutCancel(ctx), mc, true); rerr != nil {
			m.log.Error("roll back volumes of failed create", "machine", mc.ID, "err", rerr)
		}
		m.forget(mc.ID)
		return nil, err
	}
	if err := m.saveVersion(mc, "create", "", "", true); err != nil {
		_ = m.releaseVolumes(context.WithoutCancel(ctx), mc, true)
		m.forget(mc.ID)
		return nil, err
	}
	if err := os.MkdirAll(m.dir(mc.ID), 0o700); err != nil {
		return nil, m.rollbackCreate(mc, fmt.Errorf("machine dir: %w", err))
	}
	if _, err := m.prepareDisks(ctx, mc); err != nil {
		return nil, m.rollbackCreate(mc, err)
	}
	if !req.SkipLaunch {
		if err := m.startLocked(ctx, mc, "start"); err != nil {
			return nil, m.rollbackCreate(mc, err)
		}
	}
	return cloneMachine(mc), nil
}

// nameTaken reports whether name is used in app; m.mu held.
func (m *Manager) nameTaken(app, name string) bool {
	for _, o := range m.machines {
		if o.App == app && o.Name == name {
			return true
		}
	}
	return false
}

func (m *Manager) forget(id string) {
	m.mu.Lock()
	delete(m.machines, id)
	m.mu.Unlock()
}

// rollbackCreate undoes a failed create entirely and returns cause.
func (m *Manager) rollbackCreate(mc *types.Machine, cause error) error {
	if err := m.destroyLocked(context.WithoutCancel(m.ctx), mc, true); err != nil {
		m.log.Error("roll back failed create", "machine", mc.ID, "err", err)
	}
	return cause
}

func (m *Manager) dir(id string) string { return filepath.Join(m.opt.MachinesDir, id) }

// resolveImage finds ref in the image cache, pulling it when it is missing.
func (m *Manager) resolveImage(ctx context.Context, ref string) (*Image, error) {
	img, d, err := m.deps.Images.Ensure(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	out, err := imageOf(ref, img, d)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	return out, nil
}

// prepareDisks makes sure mc's disks exist.
func (m *Manager) prepareDisks(ctx context.Context, mc *types.Machine) (rootfs.Disks, error) {
	d, err := v1.NewHash(mc.ImageRef.Digest)
	if err != nil {
		return rootfs.Disks{}, fmt.Errorf("image digest %q: %w", mc.ImageRef.Digest, errdefs.ErrInvalidArgument)
	}
	return m.deps.Rootfs.PrepareImage(ctx, mc.ID, d)
}

// vm is what mc's VMM runs, without the parts only a start knows (boot
// files, drives, NIC).
func (m *Manager) vm(mc *types.Machine) VM {
	dir := m.dir(mc.ID)
	drv := mc.Driver
	if drv == "" {
		drv = mc.Config.VMM
	}
	return VM{Driver: drv, Spec: vmm.Spec{ID: mc.ID, Dir: dir, Cmdline: guest.KernelCmdline,
		VCPUs: mc.Config.Guest.CPUs, MemoryMiB: mc.Config.Guest.MemoryMB,
		Control: vmm.MachineControl(dir), ConsoleLog: filepath.Join(dir, "console.log")}}
}

// startLocked boots mc (busy held by the caller). On failure everything the
// start made is undone and mc is recorded failed.
func (m *Manager) startLocked(ctx context.Context, mc *types.Machine, ev string) (err error) {
	mc.State, mc.Error, mc.StopRequested = types.StateStarting, "", false
	if err := m.save(mc, ev, ""); err != nil {
		return err
	}
	var proc Process
	defer func() {
		if err == nil {
			return
		}
		if proc != nil {
			_ = proc.Kill()
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = proc.Wait(wctx)
			cancel()
		}
		if rerr := m.releaseNetwork(context.WithoutCancel(ctx), mc.ID); rerr != nil {
			m.log.Warn("release network after failed start", "machine", mc.ID, "err", rerr)
		}
		mc.State, mc.Error, mc.PID, mc.Network = types.StateFailed, err.Error(), 0, nil
		if serr := m.save(mc, "fail", err.Error()); serr != nil {
			m.log.Error("record failed start", "machine", mc.ID, "err", serr)
		}
	}()

	vm := m.vm(mc)
	spec := &vm.Spec
	if err := os.MkdirAll(spec.Dir, 0o700); err != nil {
		return fmt.Errorf("machine dir: %w", err)
	}
	disks, err := m.prepareDisks(ctx, mc)
	if err != nil {
		return fmt.Errorf("prepare disks: %w", err)
	}
	var root guest.Root
	spec.Drives, root = drives(disks)
	mounts, err := m.planMounts(ctx, mc, len(spec.Drives))
	if err != nil {
		return err
	}
	spec.Drives, spec.Shares = append(spec.Drives, mounts.Drives...), mounts.Shares
	var att *network.Attachment
	if m.deps.Network != nil {
		if att, err = m.deps.Network.Attach(ctx, network.AttachRequest{MachineID: mc.ID, Name: mc.Name, App: mc.App,
			Networks: endpointRequests(mc.Config.Networks), Ports: ports(mc.Config)}); err != nil {
			return fmt.Errorf("network: %w", err)
		}
		spec.NICs, spec.NetNS = nics(att), att.NetNS
		mc.Network = networkView(att)
		defer att.Close() // the VMM holds its own copies of the TAPs
	}
	rc := runConfig(mc, guestImage(mc.ImageConfig), root, att, mounts.Guest)
	if err := rc.Validate(); err != nil {
		return fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	var ctl Control
	if proc, ctl, vm = m.startWarm(ctx, mc, vm, rc); proc == nil {
		if err := m.bootFiles(ctx, &vm.Spec, rc); err != nil {
			return err
		}
		if proc, err = m.deps.Hypervisor.Start(ctx, vm); err != nil {
			return fmt.Errorf("start vmm: %w", err)
		}
	}
	vm.Driver = proc.Driver() // the one that ran, for Connect and later adopts
	mc.State, mc.PID, mc.StartedAt, mc.Emulated, mc.Driver = types.StateStarted, proc.PID(), time.Now().UTC(), proc.Emulated(), proc.Driver()
	mc.Warm = ctl != nil
	r, rctx := m.register(mc.ID, proc, vm, ctl)
	if err := m.save(mc, "started", ""); err != nil {
		m.unregister(mc.ID, r)
		if ctl != nil {
			_ = ctl.Close()
		}
		return err
	}
	m.watch(rctx, mc.ID, r)
	return nil
}

// bootFiles gives a cold boot its kernel and initramfs (with rc in it).
func (m *Manager) bootFiles(ctx context.Context, spec *vmm.Spec, rc *guest.RunConfig) error {
	data, err := rc.Marshal()
	if err != nil {
		return fmt.Errorf("run config: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	boot, err := m.deps.Boot.Prepare(ctx, spec.Dir, map[string][]byte{guest.ConfigPath: data})
	if err != nil {
		return err
	}
	spec.Kernel, spec.Initrd, spec.ACPI = boot.Kernel, boot.Initrd, boot.ACPI
	return nil
}

// register records a live VMM's run, with the context its supervision
// will run under, before the save that publishes the machine as started:
// whoever sees "started" (an event, a Get) can exec in it at once (the
// Docker API attaches to the entrypoint on that event). ctl is the
// control channel a warm start has connected already, or nil.
func (m *Manager) register(id string, proc Process, vm VM, ctl Control) (*run, context.Context) {
	r := newRun(proc, vm)
	r.pre = ctl
	ctx, cancel := context.WithCancel(m.ctx)
	r.cancel = cancel
	m.mu.Lock()
	m.runs[id] = r
	m.mu.Unlock()
	return r, ctx
}

// unregister forgets r when the start it was registered for failed.
func (m *Manager) unregister(id string, r *run) {
	m.mu.Lock()
	if m.runs[id] == r {
		delete(m.runs, id)
	}
	m.mu.Unlock()
	r.cancel()
}

// watch starts supervising a registered run: its VMM, control channel and
// health checks.
func (m *Manager) watch(ctx context.Context, id string, r *run) {
	m.wg.Add(1)
	go m.supervise(ctx, id, r)
	m.startHealth(ctx, id, r)
}

// releaseNetwork gives back what only a running machine holds: its NICs,
// addresses and published ports, and its claim on its volumes.
func (m *Manager) releaseNetwork(ctx context.Context, id string) error {
	verr := m.deactivateVolumes(ctx, id)
	if m.deps.Network == nil {
		return verr
	}
	return errors.Join(ignoreNotFound(m.deps.Network.Release(ctx, id)), verr)
}

// Start boots a created, stopped or failed machine. Starting a started
// machine is a no-op.
func (m *Manager) Start(ctx context.Context, app, ref string) (*types.Machine, error) {
	id, err := m.resolve(app, ref)
	if err != nil {
		return nil, err
	}
	mc, err := m.acquire(id, "start")
	if err != nil {
		return nil, err
	}
	defer m.releaseBusy(id)
	switch mc.State {
	case types.StateStarted:
		return mc, nil
	case types.StateCreated, types.StateStopped, types.StateFailed:
	default:
		return nil, fmt.Errorf("machine %s is %s: %w", id, mc.State, errdefs.ErrConflict)
	}
	mc.Restarts = 0
	if err := m.startLocked(ctx, mc, "start"); err != nil {
		return nil, err
	}
	return cloneMachine(mc), nil
}

// StopOptions say how to stop a machine.
type StopOptions struct {
	Signal  syscall.Signal // default SIGTERM
	Timeout time.Duration  // before the kill; default Options.StopTimeout
}

// Stop signals the entrypoint and waits for the VM to end, killing the VMM
// after the timeout. Stopping a stopped machine is a no-op.
func (m *Manager) Stop(ctx context.Context, app, ref string, opt StopOptions) (*types.Machine, error) {
	id, err := m.resolve(app, ref)
	if err != nil {
		return nil, err
	}
	mc, err := m.acquire(id, "stop")
	if err != nil {
		return nil, err
	}
	defer m.releaseBusy(id)
	if err := m.stopLocked(ctx, mc, opt); err != nil {
		return nil, err
	}
	return cloneMachine(mc), nil
}

func (m *Manager) stopLocked(ctx context.Context, mc *types.Machine, opt StopOptions) error {
	if mc.State != types.StateStarted && mc.State != types.StateStarting && mc.State != types.StateStopping {
		return nil
	}
	if opt.Signal == 0 {
		opt.Signal = syscall.SIGTERM
	}
	if opt.Timeout <= 0 {
		opt.Timeout = m.opt.StopTimeout
	}
	mc.State, mc.StopRequested = types.StateStopping, true
	if err := m.save(mc, "stop", fmt.Sprintf("signal %d", opt.Signal)); err != nil {
		return err
	}
	m.mu.Lock()
	r := m.runs[mc.ID]
	m.mu.Unlock()
	exit := &types.Exit{ExitCode: 255, Unknown: true, ExitedAt: time.Now().UTC()}
	if r != nil {
		sent := false
		if opt.Signal != syscall.SIGKILL {
			// A booting guest gets the signal once init answers, within
			// the stop timeout.
			wctx, cancel := context.WithTimeout(ctx, opt.Timeout)
			if c, err := r.waitControl(wctx); err == nil {
				sent = c.SignalEntrypoint(wctx, opt.Signal) == nil
			}
			cancel()
		}
		if !sent {
			_ = r.proc.Kill()
		}
		select {
		case <-r.done:
		case <-time.After(opt.Timeout):
			m.log.Info("stop timeout; killing the vmm", "machine", mc.ID, "timeout", opt.Timeout)
			_ = r.proc.Kill()
			<-r.done
		}
		m.mu.Lock()
		if m.runs[mc.ID] == r {
			delete(m.runs, mc.ID)
		}
		m.mu.Unlock()
		r.closeControl()
		x := *r.exit
		exit = &x
	} else {
		m.killStray(ctx, mc)
	}
	exit.RequestedStop = true
	if err := m.releaseNetwork(ctx, mc.ID); err != nil {
		return fmt.Errorf("stop %s: release network: %w", mc.ID, err)
	}
	mc.State, mc.LastExit, mc.PID, mc.Network, mc.StopRequested = types.StateStopped, exit, 0, nil, false
	return m.save(mc, "exit", exitStatus(exit))
}

// killStray kills a VMM of mc that runs without being tracked (after a
// crash), and waits for it to end.
func (m *Manager) killStray(ctx context.Context, mc *types.Machine) {
	p, err := m.deps.Hypervisor.Adopt(ctx, m.vm(mc))
	if err != nil {
		return
	}
	_ = p.Kill()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_ = p.Wait(wctx)
}

// Restart stops (if needed) and starts a machine.
func (m *Manager) Restart(ctx context.Context, app, ref string, opt StopOptions) (*types.Machine, error) {
	id, err := m.resolve(app, ref)
	if err != nil {
		return nil, err
	}
	mc, err := m.acquire(id, "restart")
	if err != nil {
		return nil, err
	}
	defer m.releaseBusy(id)
	if err := m.stopLocked(ctx, mc, opt); err != nil {
		return nil, err
	}
	mc.Restarts = 0
	if err := m.startLocked(ctx, mc, "restart"); err != nil {
		return nil, err
	}
	return cloneMachine(mc), nil
}

// Signal delivers sig to a started machine's entrypoint. SIGKILL without a
// control channel kills the VMM.
func (m *Manager) Signal(ctx context.Context, app, ref string, sig syscall.Signal) error {
	r, id, err := m.running(app, ref)
	if err != nil {
		return err
	}
	if sig == syscall.SIGKILL && r.control() == nil {
		return r.proc.Kill()
	}
	// A machine that is still booting gets the signal once its init
	// answers (bounded by ctx and the boot timeout).
	if c, err := r.waitControl(ctx); err == nil {
		if err := c.SignalEntrypoint(ctx, sig); err != nil {
			if errors.Is(err, guest.ErrBooting) {
				err = fmt.Errorf("%w: %w", err, errdefs.ErrUnavailable)
			}
			return fmt.Errorf("signal %s: %w", id, err)
		}
		return nil
	}
	if sig == syscall.SIGKILL {
		return r.proc.Kill()
	}
	return fmt.Errorf("machine %s: the guest's control channel is not connected yet: %w", id, errdefs.ErrUnavailable)
}

// running returns the live run of a started machine.
func (m *Manager) running(app, ref string) (*run, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mc, err := m.lookup(app, ref)
	if err != nil {
		return nil, "", err
	}
	r := m.runs[mc.ID]
	if r == nil || mc.State != types.StateStarted {
		return nil, mc.ID, fmt.Errorf("machine %s is %s, not started: %w", mc.ID, mc.State, errdefs.ErrConflict)
	}
	return r, mc.ID, nil
}

// Exec runs a process in a started machine and returns its exit code. A
// process init could not start returns its code (127 not found, 126 not
// executable) with an error of the matching kind.
func (m *Manager) Exec(ctx context.Context, app, ref string, req types.ExecRequest, stdio guest.ExecIO) (int, error) {
	if err := validateExec(req); err != nil {
		return 0, err
	}
	r, id, err := m.running(app, ref)
	if err != nil {
		return 0, err
	}
	c, err := r.waitControl(ctx)
	if err != nil {
		return 0, fmt.Errorf("exec in %s: %w", id, err)
	}
	st, err := c.Run(ctx, guestExec(req), stdio)
	if err != nil {
		return 0, execError(execWhat(req), err)
	}
	if st.Failure != nil {
		return st.Code, failureError(execWhat(req), st.Failure)
	}
	return st.Code, nil
}

// Destroy removes a machine and everything it holds. A started machine
// needs force (it is killed). Its volumes stay (DestroyWithVolumes).
func (m *Manager) Destroy(ctx context.Context, app, ref string, force bool) error {
	return m.DestroyWithVolumes(ctx, app, ref, force, false)
}

// DestroyWithVolumes is Destroy that, with anonymous, also removes the
// machine's anonymous volumes (Docker's rm -v; --rm does it too). Named
// volumes always stay.
func (m *Manager) DestroyWithVolumes(ctx context.Context, app, ref string, force, anonymous bool) error {
	id, err := m.resolve(app, ref)
	if err != nil {
		return err
	}
	mc, err := m.acquire(id, "destroy")
	if err != nil {
		return err
	}
	defer m.releaseBusy(id)
	if !force && (mc.State == types.StateStarted || mc.State == types.StateStarting || mc.State == types.StateStopping) {
		return fmt.Errorf("machine %s is %s; stop it first or destroy with force: %w", id, mc.State, errdefs.ErrConflict)
	}
	return m.destroyLocked(ctx, mc, anonymous)
}

// destroyLocked kills, releases and forgets mc, and with anonymous
// removes its anonymous volumes. Each step is idempotent, so a destroy
// interrupted by a crash is finished by Reconcile.
func (m *Manager) destroyLocked(ctx context.Context, mc *types.Machine, anonymous bool) error {
	m.dropSpare(mc.ID) // one it took at create and never started
	mc.State = types.StateDestroying
	if err := m.save(mc, "destroy", ""); err != nil {
		return err
	}
	m.mu.Lock()
	r := m.runs[mc.ID]
	delete(m.runs, mc.ID)
	m.mu.Unlock()
	if r != nil {
		_ = r.proc.Kill()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
		}
		r.closeControl()
	} else {
		m.killStray(ctx, mc)
	}
	var errs []error
	if err := m.releaseNetwork(ctx, mc.ID); err != nil {
		errs = append(errs, fmt.Errorf("release network: %w", err))
	}
	if err := ignoreNotFound(m.deps.Rootfs.Release(ctx, mc.ID)); err != nil {
		errs = append(errs, fmt.Errorf("release disks: %w", err))
	}
	if err := m.releaseVolumes(ctx, mc, anonymous); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(m.dir(mc.ID)); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		mc.Error = err.Error()
		_ = m.save(mc, "fail", err.Error())
		return fmt.Errorf("destroy %s: %w", mc.ID, err)
	}
	if err := m.st.delete(mc); err != nil {
		return fmt.Errorf("destroy %s: %w", mc.ID, err)
	}
	m.forget(mc.ID)
	m.bus.publish(types.Event{Type: "destroy", MachineID: mc.ID, App: mc.App, State: types.StateDestroyed, Time: time.Now().UTC()})
	return nil
}

// Update replaces a machine's config (a new version). A started machine is
// restarted with it; a new image gets new disks.
func (m *Manager) Update(ctx context.Context, app, ref string, cfg types.Config) (*types.Machine, error) {
	cfg = cloneConfig(cfg)
	if err := ValidateConfig(&cfg); err != nil {
		return nil, err
	}
	id, err := m.resolve(app, ref)
	if err != nil {
		return nil, err
	}
	mc, err := m.acquire(id, "update")
	if err != nil {
		return nil, err
	}
	defer m.releaseBusy(id)
	if cfg.VMM == "" {
		cfg.VMM = mc.Config.VMM
	}
	var img *Image
	if cfg.Image != mc.Config.Image {
		if img, err = m.resolveImage(ctx, cfg.Image); err != nil {
			return nil, err
		}
	}
	if img != nil {
		withImageVolumes(&cfg, img.Volumes)
	}
	if err := m.keepAnonymousVolumes(ctx, mc, &cfg); err != nil {
		return nil, err
	}
	bindsNeedQEMU(&cfg)
	if err := m.checkBinds(ctx, cfg); err != nil {
		return nil, err
	}
	wasRunning := mc.State == types.StateStarted || mc.State == types.StateStarting
	if wasRunning {
		if err := m.stopLocked(ctx, mc, StopOptions{}); err != nil {
			return nil, err
		}
	}
	next := cloneMachine(mc)
	next.Config = cfg
	if err := m.attachVolumes(ctx, next); err != nil {
		return nil, fmt.Errorf("update %s: %w", id, err)
	}
	cfg = next.Config
	if err := m.detachUnmounted(ctx, mc, cfg); err != nil {
		return nil, fmt.Errorf("update %s: %w", id, err)
	}
	if img != nil {
		if err := ignoreNotFound(m.deps.Rootfs.Release(ctx, id)); err != nil {
			return nil, fmt.Errorf("update %s: release old disks: %w", id, err)
		}
		mc.ImageRef, mc.ImageConfig = types.ImageRef{Ref: img.Ref, Digest: img.Digest}, imageConfigView(img.Config)
	}
	mc.Config, mc.Version, mc.Driver = cfg, mc.Version+1, ""
	if err := m.saveVersion(mc, "update", fmt.Sprintf("version %d", mc.Version), "", true); err != nil {
		return nil, err
	}
	if wasRunning {
		mc.Restarts = 0
		if err := m.startLocked(ctx, mc, "start"); err != nil {
			return nil, err
		}
	}
	return cloneMachine(mc), nil
}

// Wait returns once the machine reaches state (or has been destroyed, for
// state destroyed), or fails with ErrTimeout after timeout. State
// types.WaitBooted waits for a started machine's init to take exec
// requests (see waitBooted).
func (m *Manager) Wait(ctx context.Context, app, ref string, state types.State, timeout time.Duration) (*types.Machine, error) {
	id, err := m.resolve(app, ref)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	if state == types.WaitBooted {
		return m.waitBooted(ctx, id, timeout)
	}
	events, cancel := m.Subscribe("", id)
	defer cancel()
	last, err := m.Get("", id)
	if err != nil {
		return nil, err
	}
	if last.State == state {
		return last, nil
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case e := <-events:
			if e.State != state {
				continue
			}
			// The machine may have moved on (a policy restart, auto
			// destroy): answer with the state and exit of the event.
			if cur, err := m.Get("", id); err == nil {
				last = cur
			}
			last.State = state
			if e.Exit != nil {
				last.LastExit = e.Exit
			}
			return last, nil
		case <-timer.C:
			return nil, fmt.Errorf("machine %s did not reach state %s within %s: %w", id, state, timeout, errdefs.ErrTimeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
