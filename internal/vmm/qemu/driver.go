// Package qemu is ferry's QEMU driver: qemu-system-x86_64 -M microvm with
// virtio-mmio block, net and serial devices, KVM when /dev/kvm is usable and
// TCG otherwise (then the guest is told the host TSC frequency).
package qemu

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/vmm"
)

var _ vmm.Driver = (*Driver)(nil)

// DefaultBinary is the QEMU executable looked up in PATH.
const DefaultBinary = "qemu-system-x86_64"

// Accelerators.
const (
	AccelAuto = "auto"
	AccelKVM  = "kvm"
	AccelTCG  = "tcg"
)

// Driver runs machines under QEMU.
type Driver struct {
	binary    string
	virtiofsd string // "" looks in VirtiofsdPaths, then PATH
	accel     string
	tscKHz    uint64
	kvm       func() error
	tsc       func() (TSC, error)

	once     sync.Once
	resolved string // "kvm" or "tcg"
	why      error  // why KVM is not used

	probeMu sync.Mutex
	probed  bool

	versionMu sync.Mutex
	version   [2]string // binary identity, its --version (Version)

	sandbox     *sandboxOptions // nil: QEMU runs as the caller
	consoleMax  int64
	consoleKeep int
}

type sandboxOptions struct {
	uids         vmm.UIDRange
	cgroupParent string
}

// Option configures a Driver.
type Option func(*Driver)

// WithBinary sets the QEMU executable (a path or a name in PATH).
func WithBinary(path string) Option { return func(d *Driver) { d.binary = path } }

// WithVirtiofsd sets the virtiofsd executable that serves shares.
func WithVirtiofsd(path string) Option { return func(d *Driver) { d.virtiofsd = path } }

// WithAccel forces "kvm" or "tcg"; "auto" (the default) uses KVM when
// /dev/kvm is usable.
func WithAccel(accel string) Option { return func(d *Driver) { d.accel = accel } }

// WithTSCKHz fixes the TSC frequency given to TCG guests instead of
// detecting the host's.
func WithTSCKHz(khz uint64) Option { return func(d *Driver) { d.tscKHz = khz } }

// WithSandbox runs every QEMU as a uid of its own from uids, with no
// supplementary groups (but /dev/kvm's under KVM), in a cgroup
// <cgroupParent>/ferry-<id> sized to the machine ("" for none). It is the
// default for root, with vmm.DefaultUIDs() and cgroup parent "ferry".
func WithSandbox(uids vmm.UIDRange, cgroupParent string) Option {
	return func(d *Driver) { d.sandbox = &sandboxOptions{uids: uids, cgroupParent: cgroupParent} }
}

// WithoutSandbox runs QEMU as the caller's user and in its cgroup (QEMU's
// own -sandbox filter stays on).
func WithoutSandbox() Option { return func(d *Driver) { d.sandbox = nil } }

// WithConsoleLog caps each machine's console log at max bytes with keep
// rotated copies (defaults: vmm.DefaultConsoleMax, 1).
func WithConsoleLog(max int64, keep int) Option {
	return func(d *Driver) { d.consoleMax, d.consoleKeep = max, keep }
}

// New returns a QEMU driver.
func New(opts ...Option) *Driver {
	d := &Driver{binary: DefaultBinary, accel: AccelAuto, kvm: vmm.KVMUsable, tsc: HostTSC}
	if os.Geteuid() == 0 {
		d.sandbox = &sandboxOptions{uids: vmm.DefaultUIDs(), cgroupParent: defaultCgroupRoot}
	}
	for _, o := range opts {
		o(d)
	}
	return d
}

// Name is "qemu".
func (d *Driver) Name() string { return "qemu" }

// Available checks that the QEMU binary exists; QEMU runs with or without KVM.
func (d *Driver) Available() error {
	if d.accel != AccelAuto && d.accel != AccelKVM && d.accel != AccelTCG {
		return fmt.Errorf("qemu accel %q (want auto, kvm or tcg): %w", d.accel, errdefs.ErrInvalidArgument)
	}
	if _, err := vmm.LookPath(d.binary, "install qemu-system-x86"); err != nil {
		return err
	}
	if d.accel == AccelKVM {
		return d.kvm()
	}
	return nil
}

// Accel returns the accelerator machines will use and, under TCG in auto
// mode, why KVM is not used. Decided once per Driver from /dev/kvm alone;
// Probe (run by Start) may then move an auto driver to TCG.
func (d *Driver) Accel() (string, error) {
	d.once.Do(func() {
		switch d.accel {
		case AccelKVM, AccelTCG:
			d.resolved = d.accel
		default:
			if err := d.kvm(); err != nil {
				d.resolved, d.why = AccelTCG, err
			} else {
				d.resolved = AccelKVM
			}
		}
	})
	return d.resolved, d.why
}

// Emulated reports whether guests run under TCG (the CLI says so once:
// expect several times slower guests).
func (d *Driver) Emulated() bool {
	a, _ := d.Accel()
	return a == AccelTCG
}

// Start runs the machine: plan, then vmm.Run.
func (d *Driver) Start(ctx context.Context, spec vmm.Spec) (*vmm.Process, error) {
	return d.start(ctx, spec, d.Plan)
}

// start checks what a start needs, plans spec with plan and runs it.
func (d *Driver) start(ctx context.Context, spec vmm.Spec, plan func(vmm.Spec) (*vmm.Plan, error)) (*vmm.Process, error) {
	if err := d.Available(); err != nil {
		return nil, err
	}
	st, err := os.Stat(spec.Kernel)
	if err != nil {
		return nil, fmt.Errorf("qemu: guest kernel: %w: %w", err, errdefs.ErrNotFound)
	}
	if d.sandbox != nil && st.Mode().Perm()&0o004 == 0 {
		return nil, fmt.Errorf("qemu: guest kernel %s is mode %o: a sandboxed QEMU reads it as a uid of its own; make it world-readable (chmod 0644): %w",
			spec.Kernel, st.Mode().Perm(), errdefs.ErrInvalidArgument)
	}
	_, _ = d.probe(ctx, spec)
	p, err := plan(spec)
	if err != nil {
		return nil, err
	}
	return vmm.Run(ctx, p)
}

// kvmGroup is the group owning /dev/kvm.
func kvmGroup() (int, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat("/dev/kvm", &st); err != nil || st.Gid == 0 {
		return 0, false
	}
	return int(st.Gid), true
}

// DialControl connects to the control port's unix socket, retrying while
// QEMU has not created it yet, until ctx ends.
func (d *Driver) DialControl(ctx context.Context, spec vmm.Spec) (net.Conn, error) {
	return dialUnixRetry(ctx, spec.Control.Socket)
}

func dialUnixRetry(ctx context.Context, path string) (net.Conn, error) {
	var dialer net.Dialer
	for {
		c, err := dialer.DialContext(ctx, "unix", path)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("dial control %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("dial control %s: %w", path, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}
