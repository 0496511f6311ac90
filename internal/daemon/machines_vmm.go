package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/machine"
	"github.com/ferryvm/ferry/internal/paths"
	"github.com/ferryvm/ferry/internal/vmm"
	"github.com/ferryvm/ferry/internal/vmm/firecracker"
	"github.com/ferryvm/ferry/internal/vmm/qemu"
)

// hypervisor adapts the VMM drivers and the guest control client to
// machine.Hypervisor.
type hypervisor struct {
	root    paths.Root
	def     string
	drivers []vmm.Driver
	rotator *vmm.Rotator
	log     *slog.Logger
}

// guestCmdline is what every ferry guest's kernel gets beyond the driver's
// own options: quiet and only emergencies on the console, so the console
// carries the entrypoint's output (init writes its must-see lines there
// itself).
const guestCmdline = "quiet loglevel=1"

func newHypervisor(root paths.Root, def string, log *slog.Logger) *hypervisor {
	// Firecracker first: it is chosen when it can run (binary + KVM).
	return &hypervisor{root: root, def: def, log: log,
		drivers: []vmm.Driver{firecracker.New(), qemu.New(qemu.WithAccel(qemuAccel()))},
		rotator: &vmm.Rotator{Logger: log}}
}

// qemuAccel is $FERRY_QEMU_ACCEL (kvm, tcg) or auto: a host whose /dev/kvm
// opens but cannot run guests (some nested setups) needs tcg forced.
func qemuAccel() string {
	if a := os.Getenv("FERRY_QEMU_ACCEL"); a != "" {
		return a
	}
	return qemu.AccelAuto
}

func (h *hypervisor) driver(name string) (vmm.Driver, error) {
	if name == "" {
		name = h.def
	}
	return vmm.Select(name, h.drivers...)
}

// spec turns a machine.VMSpec into the VMM package's Spec.
func (h *hypervisor) spec(s machine.VMSpec) vmm.Spec {
	vs := vmm.Spec{ID: s.ID, Dir: s.Dir, Kernel: s.Boot.Kernel, Initrd: s.Boot.Initrd, Cmdline: guestCmdline, ACPI: s.Boot.ACPI,
		VCPUs: s.VCPUs, MemoryMiB: s.MemoryMiB, ConsoleLog: s.ConsoleLog,
		Control: vmm.Control{Socket: filepath.Join(s.Dir, "control.sock"), VsockCID: 3, VsockPort: vmm.DefaultVsockPort}}
	for _, d := range s.Drives {
		vs.Drives = append(vs.Drives, vmm.Drive{ID: d.ID, Path: d.Path, ReadOnly: d.ReadOnly})
	}
	if s.NIC != nil {
		for i, e := range s.NIC.Endpoints {
			vs.NICs = append(vs.NICs, vmm.NIC{ID: fmt.Sprintf("eth%d", i), Tap: e.Tap, File: e.File, MAC: e.MAC})
		}
		vs.NetNS = s.NIC.NetNS
	}
	return vs
}

func (h *hypervisor) Start(ctx context.Context, s machine.VMSpec) (machine.Process, error) {
	drv, err := h.driver(s.VMM)
	if err != nil {
		return nil, err
	}
	spec := h.spec(s)
	_ = os.Remove(spec.Control.Socket) // a stale socket from an earlier run
	// vmm.json records what runs (the plan: argv, accel) for inspection
	// and benches; it is informational, rebuilt on every start.
	if plan, err := drv.Plan(spec); err == nil {
		if b, err := json.MarshalIndent(struct {
			Spec vmm.Spec  `json:"spec"`
			Plan *vmm.Plan `json:"plan"`
		}{spec, plan}, "", "  "); err == nil {
			_ = os.WriteFile(filepath.Join(s.Dir, "vmm.json"), b, 0o600)
		}
	}
	p, err := drv.Start(ctx, spec)
	if err != nil {
		return nil, err
	}
	h.rotator.Add(s.ConsoleLog)
	return &process{p: p, driver: drv.Name(), emulated: emulated(drv)}, nil
}

func emulated(d vmm.Driver) bool {
	if q, ok := d.(*qemu.Driver); ok {
		return q.Emulated()
	}
	return false
}

func (h *hypervisor) Adopt(ctx context.Context, s machine.VMSpec) (machine.Process, error) {
	pidfile := filepath.Join(s.Dir, "vmm.pid")
	p, err := vmm.Adopt(pidfile)
	if errors.Is(err, errdefs.ErrNotFound) {
		// A daemon killed between starting the VMM and writing its pid
		// file left it running untracked: find it by its marker.
		p, err = vmm.AdoptByMarker(vmm.Spec{ID: s.ID}.Marker(), s.Dir, pidfile)
	}
	if err != nil {
		return nil, err
	}
	name := "qemu"
	for _, a := range p.Args {
		if strings.Contains(filepath.Base(a), "firecracker") || strings.Contains(filepath.Base(a), "jailer") {
			name = "firecracker"
			break
		}
	}
	h.rotator.Add(s.ConsoleLog)
	var drv vmm.Driver
	for _, d := range h.drivers {
		if d.Name() == name {
			drv = d
		}
	}
	return &process{p: p, driver: name, emulated: drv != nil && emulated(drv)}, nil
}

func (h *hypervisor) Connect(ctx context.Context, s machine.VMSpec) (machine.Control, error) {
	name := s.VMM
	var drv vmm.Driver
	for _, d := range h.drivers {
		if d.Name() == name || (name == "" && d.Name() == "qemu") {
			drv = d
		}
	}
	if drv == nil {
		return nil, fmt.Errorf("vmm %q: unknown: %w", name, errdefs.ErrInvalidArgument)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := drv.DialControl(cctx, h.spec(s))
	if err != nil {
		return nil, err
	}
	c, err := guest.NewClient(cctx, conn, guest.WithLogger(h.log.With("machine", s.ID)))
	if err != nil {
		return nil, err
	}
	return &control{c: c}, nil
}

// Reap kills VMMs recorded under this root's machine directories whose
// machine is not in keep (only this root's: other daemons' VMMs are not
// ours to touch).
func (h *hypervisor) Reap(ctx context.Context, keep []string) ([]string, error) {
	k := map[string]bool{}
	for _, id := range keep {
		k[id] = true
	}
	ents, err := os.ReadDir(h.root.Machines())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if k[e.Name()] {
			continue
		}
		dir := h.root.Machine(e.Name())
		p, err := vmm.Adopt(filepath.Join(dir, "vmm.pid"))
		if errors.Is(err, errdefs.ErrNotFound) {
			p, err = vmm.AdoptByMarker(vmm.Spec{ID: e.Name()}.Marker(), dir, filepath.Join(dir, "vmm.pid"))
		}
		if err != nil {
			continue
		}
		_, _ = vmm.Stop(ctx, p, 0)
		out = append(out, e.Name())
	}
	return out, nil
}

// process adapts *vmm.Process.
type process struct {
	p        *vmm.Process
	driver   string
	emulated bool
}

func (p *process) PID() int       { return p.p.Pid }
func (p *process) Kill() error    { return p.p.Kill() }
func (p *process) Emulated() bool { return p.emulated }
func (p *process) Driver() string { return p.driver }
func (p *process) Wait(ctx context.Context) error {
	_, err := p.p.Wait(ctx)
	return err
}

// control adapts the guest control client.
type control struct{ c *guest.Client }

func (c *control) Close() error { return c.c.Close() }

// Signal delivers sig to the entrypoint, first waiting (at most a minute)
// for init to have started it: a signal to a machine that is still
// booting is meant for its entrypoint, not refused.
func (c *control) Signal(ctx context.Context, sig syscall.Signal) error {
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		st, err := c.c.Status(wctx)
		if err != nil {
			return err
		}
		if st.State != guest.StateBooting {
			break
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("signal: the guest is still booting: %w", errdefs.ErrUnavailable)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return c.c.Signal(ctx, sig)
}

func (c *control) Wait(ctx context.Context) (*machine.Exit, error) {
	s, err := c.c.Wait(ctx)
	if err != nil {
		return nil, err
	}
	return exitFromGuest(s), nil
}

func (c *control) Exec(ctx context.Context, req machine.ExecRequest, stdio machine.ExecIO) (int, error) {
	p, err := c.c.Exec(ctx, guest.ExecRequest{Argv: req.Cmd, Env: req.Env, User: req.User, WorkingDir: req.WorkingDir,
		TTY: req.TTY, Rows: uint16(req.Rows), Cols: uint16(req.Cols), Stdin: stdio.Stdin != nil, Entrypoint: req.Entrypoint})
	if err != nil {
		return 0, fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	defer func() { _ = p.Close() }()
	done := make(chan struct{})
	defer close(done)
	if stdio.Stdin != nil {
		go func() {
			w := p.Stdin()
			_, _ = io.Copy(w, stdio.Stdin)
			_ = w.Close()
		}()
	}
	if stdio.Resize != nil {
		go func() {
			for {
				select {
				case ws := <-stdio.Resize:
					_ = p.Resize(uint16(ws.Rows), uint16(ws.Cols))
				case <-done:
					return
				}
			}
		}()
	}
	copied := make(chan struct{}, 2)
	stderr := stdio.Stderr
	if stderr == nil {
		stderr = io.Discard
	}
	go func() { _, _ = io.Copy(stdio.Stdout, p.Stdout); copied <- struct{}{} }()
	go func() { _, _ = io.Copy(stderr, p.Stderr); copied <- struct{}{} }()
	st, err := p.Wait(ctx)
	if err != nil {
		return 0, err
	}
	<-copied
	<-copied
	if st.Failure != nil {
		return st.Code, fmt.Errorf("exec %s: %s: %w", strings.Join(req.Cmd, " "), st.Failure.Message, errdefs.ErrInvalidArgument)
	}
	return st.Code, nil
}

// exitFromGuest converts init's exit status.
func exitFromGuest(s guest.ExitStatus) *machine.Exit {
	return &machine.Exit{ExitCode: s.Code, Signal: s.Signal, OOMKilled: s.OOMKilled, ExitedAt: time.Now().UTC()}
}

func splitLinesString(s string) []string { return strings.Split(s, "\n") }

func containsBytes(b []byte, sub string) bool { return strings.Contains(string(b), sub) }
