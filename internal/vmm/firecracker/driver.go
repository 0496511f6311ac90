// Package firecracker is ferry's Firecracker driver: it renders a machine
// Spec as Firecracker's config file and runs
// `firecracker --no-api --config-file`, optionally under `jailer` (chroot,
// uid/gid, network namespace). The control channel is Firecracker's hybrid
// vsock: a unix socket on which the host sends "CONNECT <port>\n".
//
// The generated config is validated in tests against Firecracker's
// published API schema (testdata/firecracker-swagger.yaml).
package firecracker

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/vmm"
)

var _ vmm.Driver = (*Driver)(nil)

// Jailer runs Firecracker under jailer: in a chroot of its own (a new
// mount namespace, pivot_root), as a uid (and equal gid) of its own taken
// from UIDs when it starts, in the machine's network namespace, in a cgroup
// <CgroupParent>/ferry-<id> sized to the machine (none when CgroupParent is
// "").
type Jailer struct {
	Binary       string       `json:"binary"`      // default "jailer"
	ChrootBase   string       `json:"chroot_base"` // default /srv/jailer; keep it on the data dir's filesystem
	UIDs         vmm.UIDRange `json:"uids"`        // default vmm.DefaultUIDs()
	CgroupParent string       `json:"cgroup_parent,omitempty"`
}

// Driver runs machines under Firecracker.
type Driver struct {
	binary   string
	jailer   *Jailer
	logLevel string
	kvm      func() error

	consoleMax  int64
	consoleKeep int
}

// Option configures a Driver.
type Option func(*Driver)

// WithBinary sets the firecracker executable.
func WithBinary(path string) Option { return func(d *Driver) { d.binary = path } }

// WithJailer runs Firecracker under jailer.
func WithJailer(j Jailer) Option {
	return func(d *Driver) {
		if j.Binary == "" {
			j.Binary = "jailer"
		}
		if j.ChrootBase == "" {
			j.ChrootBase = "/srv/jailer"
		}
		if j.UIDs == (vmm.UIDRange{}) {
			j.UIDs = vmm.DefaultUIDs()
		}
		d.jailer = &j
	}
}

// WithConsoleLog caps each machine's console log at max bytes with keep
// rotated copies (defaults: vmm.DefaultConsoleMax, 1).
func WithConsoleLog(max int64, keep int) Option {
	return func(d *Driver) { d.consoleMax, d.consoleKeep = max, keep }
}

// WithLogLevel sets Firecracker's log level (Error, Warning, Info, Debug).
func WithLogLevel(level string) Option { return func(d *Driver) { d.logLevel = level } }

// New returns a Firecracker driver.
func New(opts ...Option) *Driver {
	d := &Driver{binary: "firecracker", logLevel: "Warning", kvm: vmm.KVMUsable}
	for _, o := range opts {
		o(d)
	}
	return d
}

// Name is "firecracker".
func (d *Driver) Name() string { return "firecracker" }

// Available needs the firecracker binary (and jailer, when used) and a
// usable /dev/kvm: Firecracker has no emulation fallback.
func (d *Driver) Available() error {
	if _, err := vmm.LookPath(d.binary, "install Firecracker from its release tarball"); err != nil {
		return err
	}
	if d.jailer != nil {
		if _, err := vmm.LookPath(d.jailer.Binary, "jailer ships in the Firecracker release tarball"); err != nil {
			return err
		}
	}
	return d.kvm()
}

// Start writes the config file and runs Firecracker.
func (d *Driver) Start(ctx context.Context, spec vmm.Spec) (*vmm.Process, error) {
	if err := d.Available(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(spec.Kernel); err != nil {
		return nil, fmt.Errorf("firecracker: guest kernel: %w: %w", err, errdefs.ErrNotFound)
	}
	plan, err := d.Plan(spec)
	if err != nil {
		return nil, err
	}
	if d.jailer != nil {
		// jailer creates the jail and its device nodes afresh: a jail left
		// by an earlier run of this machine (jailer never removes one)
		// goes first. No VMM of this machine runs now.
		if err := os.RemoveAll(filepath.Dir(d.chrootRoot(spec))); err != nil {
			return nil, fmt.Errorf("firecracker: old jail: %w", err)
		}
	}
	return vmm.Run(ctx, plan)
}

// DialControl connects to the guest's vsock port through Firecracker's
// unix socket.
func (d *Driver) DialControl(ctx context.Context, spec vmm.Spec) (net.Conn, error) {
	return DialVsock(ctx, d.hostSocket(spec), port(spec))
}

// chrootRoot is the jail's root directory as the host sees it.
func (d *Driver) chrootRoot(spec vmm.Spec) string {
	return filepath.Join(d.jailer.ChrootBase, filepath.Base(d.binary), spec.Marker(), "root")
}

// hostSocket is the vsock unix socket's path as the host sees it.
func (d *Driver) hostSocket(spec vmm.Spec) string {
	if d.jailer != nil {
		return filepath.Join(d.chrootRoot(spec), "control.sock")
	}
	return spec.Control.Socket
}

func port(spec vmm.Spec) uint32 {
	if spec.Control.VsockPort != 0 {
		return spec.Control.VsockPort
	}
	return vmm.DefaultVsockPort
}

func lookPath(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return name
}
