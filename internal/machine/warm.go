package machine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/rootfs"
	"github.com/ferryvm/ferry/internal/vmm"
	"github.com/ferryvm/ferry/internal/vmm/template"
)

// Warm starts (docs/warm-starts.md): with Deps.Warm set, a machine is
// started by restoring a template of its shape — a guest saved while
// ferry-init waited for its run config — with its own disks, TAPs and
// control socket, and its run config sent over the control channel; then
// everything goes on as after a cold boot. Templates are built on demand,
// one per key, and a start that cannot restore boots cold, saying why once.

// Warm is what warm starts need of the VMM (internal/daemon's adapter over
// the QEMU driver).
type Warm interface {
	// Key is the template key of machines started as vm; an error wrapping
	// errors.ErrUnsupported means vm's shape cannot be restored.
	Key(ctx context.Context, vm VM) (template.Key, error)
	// StartTemplate boots a template machine (with a monitor to save it)
	// whose guest RAM is mem (template.NewMemory), mapped shared.
	StartTemplate(ctx context.Context, vm VM, mem *os.File) (Process, error)
	// Save pauses the template machine vm and writes its state, without
	// the RAM in mem, into f.
	Save(ctx context.Context, vm VM, f *os.File) error
	// StartRestore starts vm paused, loading the saved state at state,
	// its RAM a private (copy-on-write) mapping of the template's sealed
	// mem; Resume sizes its drives and runs it.
	StartRestore(ctx context.Context, vm VM, state string, mem *os.File) (Process, error)
	Resume(ctx context.Context, vm VM) error
	// Claim gives the running spare (a restore of vm's template with
	// vmm.Spec.Spare set) vm's drives and open TAPs.
	Claim(ctx context.Context, spare, vm VM) error
}

// warmControl is the part of a guest control client the warm path uses.
type warmControl interface {
	Status(ctx context.Context) (guest.Status, error)
	Warm(ctx context.Context, w *guest.WarmConfig) error
}

var _ warmControl = (*guest.Client)(nil)

// Placeholders of a template machine: drives are sparse files, NICs
// datagram sockets. A restored guest has the placeholders' disk sizes:
// QEMU resizes a writable drive on resume, and ferry-init takes a base
// (read-only) no larger than its placeholder as it is and re-probes any
// other disk whose size differs (tens of milliseconds each under TCG), so
// a read-only placeholder is as large as the bases ferry builds under its
// default limits (32 GiB of layers, 16 GiB sparse).
const (
	placeholderSize         = 16 << 20
	readOnlyPlaceholderSize = 64 << 30
	templatePrefix          = "tmpl-"
	// restoringName marks a machine directory while its VMM restores a
	// template and has not taken its run config: a daemon that finds it
	// after a crash ends that VMM and starts the machine again.
	restoringName = "restoring"
)

type warmStarts struct {
	store    *template.Store
	mu       sync.Mutex
	builds   map[string]*templateBuild // key ID → build in flight
	failed   map[string]buildFailure   // key ID → its last failed build
	spares   map[string]*spare         // key ID → a spare ready (spare.go)
	filling  map[string]bool           // key ID → a spare being restored
	reserved map[string]*spare         // machine ID → the spare its create took
}

// buildFailure is a template build that failed: machines of its key boot
// cold, without trying again, until buildRetry has passed.
type buildFailure struct {
	at  time.Time
	err error
}

// buildRetry is how long a key whose template build failed is not built
// again: a build costs a boot (seconds under TCG, up to the boot timeout
// when the guest hangs), which a failing one would add to every start.
const buildRetry = 10 * time.Minute

type templateBuild struct {
	done chan struct{}
	err  error
}

func openWarm(deps Deps, opt Options) (*warmStarts, error) {
	if deps.Warm == nil {
		return nil, nil
	}
	if opt.TemplatesDir == "" {
		return nil, fmt.Errorf("machine manager: warm starts need a templates dir: %w", errdefs.ErrInvalidArgument)
	}
	st, err := template.Open(opt.TemplatesDir)
	if err != nil {
		return nil, err
	}
	return &warmStarts{store: st, builds: map[string]*templateBuild{}, failed: map[string]buildFailure{},
		spares: map[string]*spare{}, filling: map[string]bool{}, reserved: map[string]*spare{}}, nil
}

// startWarm starts vm by restoring its template and hands the machine its
// run config. It returns a nil Process when the machine is to boot cold
// (warm starts off, asked cold, a shape that cannot be restored, or a
// restore that failed: said once in the log and the machine's events).
func (m *Manager) startWarm(ctx context.Context, mc *types.Machine, vm VM, rc *guest.RunConfig) (Process, Control, VM) {
	if m.warm == nil || mc.Config.Guest.Cold {
		return nil, nil, vm
	}
	cold := vm
	vm, key, err := m.warmShape(ctx, vm)
	if errors.Is(err, errors.ErrUnsupported) {
		m.log.Debug("booting cold", "machine", mc.ID, "why", err)
		return nil, nil, cold
	}
	if err != nil {
		m.bootCold(mc, err)
		return nil, nil, cold
	}
	if sp := m.reservedSpare(mc.ID); sp != nil {
		if sp.key.ID() == key.ID() {
			proc, ctl, err := m.claimSpare(ctx, &vm, sp, rc)
			if err == nil {
				return proc, ctl, vm // its create scheduled the next spare (takeSpare)
			}
			m.log.Warn("spare machine not claimed; restoring", "machine", mc.ID, "err", err)
		} else {
			m.endSpare(sp, false) // its shape was not this machine's
		}
	}
	t, err := m.template(ctx, key, vm)
	if err != nil {
		m.bootCold(mc, err)
		return nil, nil, cold
	}
	proc, ctl, err := m.restore(ctx, &vm, t, rc)
	if err != nil {
		if errors.Is(err, errBadTemplate) {
			// Rebuilt at the next start: a template whose state does not
			// load (checksummed, so not corrupt on disk) is not tried again.
			_ = m.warm.store.Remove(key)
		}
		m.bootCold(mc, err)
		return nil, nil, cold
	}
	m.fillSpare(key, vm, spareDelay)
	return proc, ctl, vm
}

// bootCold says, once per start, why a machine boots cold (in the daemon's
// log at debug level only when its template's failed build was logged).
func (m *Manager) bootCold(mc *types.Machine, why error) {
	if errors.Is(why, errTemplateFailed) {
		m.log.Debug("warm start failed; booting cold", "machine", mc.ID, "err", why)
	} else {
		m.log.Warn("warm start failed; booting cold", "machine", mc.ID, "err", why)
	}
	if err := m.save(mc, "cold_boot", "warm start failed: "+why.Error()); err != nil {
		m.log.Warn("record cold boot", "machine", mc.ID, "err", err)
	}
}

var (
	errBadTemplate    = errors.New("the template's state did not load")
	errTemplateFailed = errors.New("the template of this shape failed to build")
)

// restore starts vm from t, runs it and hands it its run config; it
// closes t's descriptor of the RAM (the VMM has its own).
func (m *Manager) restore(ctx context.Context, vm *VM, t *template.Template, rc *guest.RunConfig) (_ Process, _ Control, err error) {
	defer t.Close()
	t0 := time.Now()
	marker := filepath.Join(vm.Spec.Dir, restoringName)
	if err := os.WriteFile(marker, []byte(t.ID+"\n"), 0o600); err != nil {
		return nil, nil, err
	}
	proc, err := m.deps.Warm.StartRestore(ctx, *vm, t.State, t.RAM)
	if err != nil {
		_ = os.Remove(marker)
		return nil, nil, fmt.Errorf("restore: %w", err)
	}
	vm.Driver = proc.Driver()
	defer func() {
		if err != nil {
			endProcess(ctx, proc)
			_ = os.Remove(marker)
		}
	}()
	rctx, cancel := context.WithTimeout(ctx, m.opt.RestoreTimeout)
	defer cancel()
	t1 := time.Now()
	if err := m.deps.Warm.Resume(rctx, *vm); err != nil {
		return nil, nil, fmt.Errorf("resume: %w: %w", err, errBadTemplate)
	}
	t2 := time.Now()
	ctl, err := m.connectUntil(rctx, *vm)
	if err != nil {
		return nil, nil, fmt.Errorf("restored guest: %w", err)
	}
	t3 := time.Now()
	w, err := guest.NewWarmConfig(*rc, time.Now())
	if err == nil {
		w.DiskBytes, err = driveSizes(vm.Spec.Drives)
	}
	if err == nil {
		err = ctl.(warmControl).Warm(rctx, w)
	}
	if err != nil {
		_ = ctl.Close()
		return nil, nil, fmt.Errorf("restored guest: warm config: %w", err)
	}
	_ = os.Remove(marker)
	m.log.Debug("restored", "machine", vm.Spec.ID, "template", t.ID, "launch", t1.Sub(t0), "resume", t2.Sub(t1),
		"connect", t3.Sub(t2), "config", time.Since(t3), "total", time.Since(t0))
	return proc, ctl, nil
}

// driveSizes are the sizes of drives' files, in order; none when a drive
// is not a regular file (the guest then re-probes every disk).
func driveSizes(drives []vmm.Drive) ([]int64, error) {
	out := make([]int64, len(drives))
	for i, d := range drives {
		fi, err := os.Stat(d.Path)
		if err != nil {
			return nil, fmt.Errorf("drive %s: %w", d.ID, err)
		}
		if !fi.Mode().IsRegular() || fi.Size() == 0 {
			return nil, nil
		}
		out[i] = fi.Size()
	}
	return out, nil
}

// connectUntil dials vm's control channel until the guest answers or ctx
// ends; the client must take warm configs.
func (m *Manager) connectUntil(ctx context.Context, vm VM) (Control, error) {
	for {
		ctl, err := m.deps.Hypervisor.Connect(ctx, vm)
		if err == nil {
			if _, ok := ctl.(warmControl); !ok {
				_ = ctl.Close()
				return nil, fmt.Errorf("the control client takes no warm config: %w", errors.ErrUnsupported)
			}
			return ctl, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("ferry-init did not answer: %w: %w", err, errdefs.ErrTimeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// endProcess kills p and waits a little for it to go.
func endProcess(ctx context.Context, p Process) {
	_ = p.Kill()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	_ = p.Wait(wctx)
	cancel()
}

// Prewarm builds, in the background, the template of a machine created
// with the defaults (DefaultCPUs, DefaultMemoryMB, an overlay root and,
// with a network, one NIC) when it is not kept yet, so the first such
// machine restores at once instead of waiting for its template; a start
// of that shape meanwhile waits for this build as for any other. It
// returns at once; a build that fails is logged (and not tried again for
// buildRetry, as any failed build). Call it after Reconcile.
func (m *Manager) Prewarm(ctx context.Context) {
	if m.warm == nil {
		return
	}
	go func() {
		if err := m.prewarm(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("warm-start template of the default machine not built", "err", err)
		}
	}()
}

func (m *Manager) prewarm(ctx context.Context) error {
	mc := &types.Machine{ID: templatePrefix + "default", Config: types.Config{VMM: m.opt.DefaultVMM,
		Guest: types.Guest{CPUs: DefaultCPUs, MemoryMB: DefaultMemoryMB}}}
	vm := m.vm(mc)
	spec := &vm.Spec
	if err := os.MkdirAll(spec.Dir, 0o700); err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(spec.Dir) }()
	spec.Drives, _ = drives(rootfs.Disks{Mode: rootfs.ModeOverlay, Base: "base", Writable: "scratch"})
	if m.deps.Network != nil {
		spec.NICs = []vmm.NIC{{ID: "eth0"}}
	}
	vm, key, err := m.warmShape(ctx, vm)
	if errors.Is(err, errors.ErrUnsupported) {
		return nil // that VMM has no warm starts
	}
	if err != nil {
		return err
	}
	t, err := m.template(ctx, key, vm)
	if err != nil {
		return err
	}
	_ = t.Close()
	m.fillSpare(key, vm, 0)
	return nil
}

// warmShape gives vm the shared boot files (no run config in them) and
// the warm command line, and returns it with its template key (an error
// wrapping errors.ErrUnsupported: a shape that cannot be restored).
func (m *Manager) warmShape(ctx context.Context, vm VM) (VM, template.Key, error) {
	spec := &vm.Spec
	boot, err := m.deps.Boot.Prepare(ctx, spec.Dir, nil)
	if err != nil {
		return vm, template.Key{}, fmt.Errorf("boot files: %w", err)
	}
	spec.Kernel, spec.Initrd, spec.ACPI = boot.Kernel, boot.Initrd, boot.ACPI
	spec.Cmdline = strings.TrimSpace(spec.Cmdline + " " + guest.WarmCmdline)
	key, err := m.deps.Warm.Key(ctx, vm)
	return vm, key, err
}

// template returns key's template, building it when it is missing or
// unusable (the store removes a corrupt or truncated one); one build per
// key runs at a time and concurrent starts wait for it. After a failed
// build the key is not built again for buildRetry (errTemplateFailed).
func (m *Manager) template(ctx context.Context, key template.Key, vm VM) (*template.Template, error) {
	t, err := m.warm.store.Get(key)
	if err == nil {
		return t, nil
	}
	if !errors.Is(err, errdefs.ErrNotFound) {
		return nil, err
	}
	if strings.Contains(err.Error(), "unusable") {
		m.log.Warn("warm-start template unusable; rebuilding it", "err", err)
	}
	id := key.ID()
	m.warm.mu.Lock()
	if f, ok := m.warm.failed[id]; ok {
		if since := time.Since(f.at); since < buildRetry {
			m.warm.mu.Unlock()
			return nil, fmt.Errorf("%w %v ago (%w); tried again after %v", errTemplateFailed, since.Round(time.Second), f.err, buildRetry)
		}
		delete(m.warm.failed, id)
	}
	b := m.warm.builds[id]
	if b == nil {
		b = &templateBuild{done: make(chan struct{})}
		m.warm.builds[id] = b
		go func() {
			// Not the caller's context: other starts may wait for it.
			bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.opt.BootTimeout+time.Minute)
			b.err = m.buildTemplate(bctx, key, vm)
			cancel()
			m.warm.mu.Lock()
			delete(m.warm.builds, id)
			if b.err != nil {
				m.warm.failed[id] = buildFailure{at: time.Now(), err: b.err}
			}
			m.warm.mu.Unlock()
			close(b.done)
		}()
	}
	m.warm.mu.Unlock()
	select {
	case <-b.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if b.err != nil {
		return nil, b.err
	}
	return m.warm.store.Get(key) // each start its own descriptor of the RAM
}

// templateVM is the template machine for machines started as vm: the
// same kernel, initramfs, command line, vCPUs, memory and device layout,
// with placeholder drives and NICs, in a directory of its own under the
// machines directory (so a daemon restart reaps a build it cut off).
func (m *Manager) templateVM(key template.Key, vm VM) (VM, func(), error) {
	name := templatePrefix + key.ID()[:16]
	dir := filepath.Join(m.opt.MachinesDir, name)
	if err := os.RemoveAll(dir); err != nil {
		return VM{}, nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return VM{}, nil, err
	}
	var files []*os.File
	cleanup := func() {
		for _, f := range files {
			_ = f.Close()
		}
		_ = os.RemoveAll(dir)
	}
	s := vm.Spec
	spec := vmm.Spec{ID: name, Dir: dir, Kernel: s.Kernel, Initrd: s.Initrd, Cmdline: s.Cmdline, ACPI: s.ACPI,
		VCPUs: s.VCPUs, MemoryMiB: s.MemoryMiB, Control: vmm.MachineControl(dir), ConsoleLog: filepath.Join(dir, "console.log")}
	var err error
	if spec.Drives, err = placeholderDrives(dir, "drive", s.Drives); err != nil {
		cleanup()
		return VM{}, nil, err
	}
	for i, n := range s.NICs {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			cleanup()
			return VM{}, nil, fmt.Errorf("placeholder nic: %w", err)
		}
		a, b := os.NewFile(uintptr(fds[0]), "nic"), os.NewFile(uintptr(fds[1]), "nic-peer")
		files = append(files, a, b)
		spec.NICs = append(spec.NICs, vmm.NIC{ID: n.ID, Tap: "placeholder", File: a, Socket: true, MAC: guest.TemplateMAC(i)})
	}
	return VM{Driver: vm.Driver, Spec: spec}, cleanup, nil
}

// placeholderDrives are sparse files in dir (named prefix and the index)
// standing for drives: of placeholderSize, read-only ones of
// readOnlyPlaceholderSize.
func placeholderDrives(dir, prefix string, drives []vmm.Drive) ([]vmm.Drive, error) {
	var out []vmm.Drive
	for i, d := range drives {
		p := filepath.Join(dir, fmt.Sprintf("%s%d.img", prefix, i))
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			return nil, err
		}
		size := int64(placeholderSize)
		if d.ReadOnly {
			size = readOnlyPlaceholderSize
		}
		if err := os.Truncate(p, size); err != nil {
			return nil, err
		}
		out = append(out, vmm.Drive{ID: d.ID, Path: p, ReadOnly: d.ReadOnly})
	}
	return out, nil
}

// buildTemplate boots key's template machine, waits until its ferry-init
// waits for a warm config, and saves it.
func (m *Manager) buildTemplate(ctx context.Context, key template.Key, vm VM) error {
	start := time.Now()
	tvm, cleanup, err := m.templateVM(key, vm)
	if err != nil {
		return fmt.Errorf("template %s: %w", key.ID(), err)
	}
	defer cleanup()
	// Its own initramfs (the shared archive, no run config): the VMM runs
	// as a uid of its own that is given the file.
	boot, err := m.deps.Boot.Prepare(ctx, tvm.Spec.Dir, nil)
	if err != nil {
		return fmt.Errorf("template %s: %w", key.ID(), err)
	}
	tvm.Spec.Kernel, tvm.Spec.Initrd, tvm.Spec.ACPI = boot.Kernel, boot.Initrd, boot.ACPI
	if k, err := m.deps.Warm.Key(ctx, tvm); err != nil || k.ID() != key.ID() {
		return fmt.Errorf("template %s: the kernel or ferry-init changed while it was built (%v): %w", key.ID(), err, errdefs.ErrConflict)
	}
	// The guest RAM: a memfd the template VMM maps shared, so the state
	// holds device state only and restores map the RAM privately.
	mem, err := template.NewMemory(key.ID()[:16], int64(tvm.Spec.MemoryMiB)<<20)
	if err != nil {
		return fmt.Errorf("template %s: %w", key.ID(), err)
	}
	defer mem.Close()
	proc, err := m.deps.Warm.StartTemplate(ctx, tvm, mem)
	if err != nil {
		return fmt.Errorf("template %s: start: %w", key.ID(), err)
	}
	defer endProcess(ctx, proc)
	tvm.Driver = proc.Driver()
	wctx, cancel := context.WithTimeout(ctx, m.opt.BootTimeout)
	defer cancel()
	if err := m.awaitWaiting(wctx, tvm); err != nil {
		return fmt.Errorf("template %s: %w", key.ID(), err)
	}
	t, err := m.warm.store.Put(ctx, key, func(ctx context.Context, f *os.File) error {
		if err := m.deps.Warm.Save(ctx, tvm, f); err != nil {
			return err
		}
		// Nothing may write the memory once it is saved.
		if err := proc.Kill(); err != nil {
			return fmt.Errorf("end the template VMM: %w", err)
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := proc.Wait(wctx); err != nil {
			return fmt.Errorf("the template VMM did not end: %w", err)
		}
		return nil
	}, mem)
	if err != nil {
		return err
	}
	defer t.Close()
	var ram int64
	if t.Memory != nil {
		ram = t.Memory.Data
	}
	m.log.Info("warm-start template built", "template", t.ID, "took", time.Since(start).Round(time.Millisecond), "bytes", t.Size, "memory_bytes", ram,
		"vcpus", key.VCPUs, "memory_mib", key.MemoryMiB, "drives", len(key.Layout.Drives), "nics", key.Layout.NICs)
	return nil
}

// awaitWaiting polls the template machine's init until it waits for its
// warm config, and disconnects.
func (m *Manager) awaitWaiting(ctx context.Context, tvm VM) error {
	ctl, err := m.connectUntil(ctx, tvm)
	if err != nil {
		return err
	}
	defer ctl.Close()
	for {
		st, err := ctl.(warmControl).Status(ctx)
		if err != nil {
			return fmt.Errorf("template init: %w", err)
		}
		switch st.State {
		case guest.StateWaiting:
			return nil
		case guest.StateBooting:
		default:
			return fmt.Errorf("template init is %s, not waiting for a warm config", st.State)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("template init never waited for a warm config: %w", errdefs.ErrTimeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// interruptedRestore reports (and forgets) that a crash cut off a restore
// in dir: the VMM has no run config and must not be adopted.
func interruptedRestore(dir string) bool {
	err := os.Remove(filepath.Join(dir, restoringName))
	return err == nil
}
