package machine

import (
	"context"
	"fmt"
	"io"
	"syscall"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/kernel"
	"github.com/ferryvm/ferry/internal/network"
)

// The interfaces below are what the machine lifecycle needs from the rest of
// ferry; internal/daemon adapts the real packages to them. Every method that
// changes the system is idempotent and keyed by the machine ID, so the
// lifecycle can re-run any step after a crash.

// Images resolves an image reference to a local image, pulling it when it
// is not cached, and holds it for a machine.
type Images interface {
	Resolve(ctx context.Context, ref string) (*Image, error)
}

// Image is a resolved image.
type Image struct {
	Ref    string
	Digest string // manifest digest; keys the rootfs base
	Config guest.Image
}

// Rootfs gives a machine its disks.
type Rootfs interface {
	// Prepare makes sure the image's base exists and the machine's own
	// disks (scratch or clone) exist, and holds a lease on the base for id.
	Prepare(ctx context.Context, id string, img *Image) (*Disks, error)
	// Release removes the machine's disks and lease. Missing is fine.
	Release(ctx context.Context, id string) error
	// Reconcile removes disks and leases of machines not in keep.
	Reconcile(ctx context.Context, keep []string) error
}

// Disks are a machine's block devices, in guest order.
type Disks struct {
	Base     string // read-only base (overlay mode) or the writable root (single mode)
	Scratch  string // writable upper; empty in single mode
	ReadOnly bool   // Base is attached read-only
}

// Network gives a running machine its NIC (a *network.Network).
type Network interface {
	// Attach creates (or finds) the machine's TAP, address and published
	// ports. The returned File is the open TAP for the VMM (may be nil when
	// the VMM opens the TAP by name).
	Attach(ctx context.Context, req network.AttachRequest) (*network.Attachment, error)
	// Release removes the TAP, address and rules of id. Missing is fine.
	Release(ctx context.Context, id string) error
	// Reconcile removes TAPs, leases and rules of machines not in keep.
	Reconcile(ctx context.Context, keep []string) error
	// Rename changes a running machine's DNS name. Unknown is fine.
	Rename(ctx context.Context, id, name string) error
}

// Boot chooses the guest kernel for a start and writes the machine's
// initramfs (shared init + files such as the run config) into dir (a
// *kernel.Assets).
type Boot interface {
	Prepare(ctx context.Context, dir string, files map[string][]byte) (kernel.Boot, error)
}

// VMSpec is what the lifecycle asks a hypervisor to run.
type VMSpec struct {
	ID         string
	Dir        string
	VMM        string      // "" picks the default
	Boot       kernel.Boot // kernel, initramfs, ACPI
	VCPUs      int
	MemoryMiB  int
	Drives     []Drive
	NIC        *network.Attachment
	ConsoleLog string
}

// Drive is a block device; the first is /dev/vda.
type Drive struct {
	ID       string
	Path     string
	ReadOnly bool
}

// Hypervisor runs VMM processes.
type Hypervisor interface {
	// Start launches the VMM in its own session; it outlives the daemon.
	Start(ctx context.Context, spec VMSpec) (Process, error)
	// Adopt finds the live VMM of a machine (pid file + start time +
	// marker); an error wrapping errdefs.ErrNotFound means none runs.
	Adopt(ctx context.Context, spec VMSpec) (Process, error)
	// Connect dials the guest's control channel and returns once the guest
	// answers on it (a connection alone does not prove the guest is up). An
	// error wrapping errors.ErrUnsupported means the driver has none: the
	// machine runs without exec and signals, exits are read off the console.
	Connect(ctx context.Context, spec VMSpec) (Control, error)
	// Reap kills VMM processes of machines not in keep and returns their IDs.
	Reap(ctx context.Context, keep []string) ([]string, error)
}

// Process is a running VMM.
type Process interface {
	PID() int
	// Wait returns when the VMM has exited (also for adopted processes).
	Wait(ctx context.Context) error
	// Kill ends the VMM at once.
	Kill() error
	// Emulated reports whether the VMM runs under TCG.
	Emulated() bool
	// Driver names the VMM ("qemu", "firecracker").
	Driver() string
}

// Control is the host end of a guest's control channel.
type Control interface {
	// Wait returns the entrypoint's exit once it has exited.
	Wait(ctx context.Context) (*Exit, error)
	// Signal delivers sig to the entrypoint.
	Signal(ctx context.Context, sig syscall.Signal) error
	// Exec runs a process in the guest and returns its exit code.
	Exec(ctx context.Context, req ExecRequest, stdio ExecIO) (int, error)
	Close() error
}

// ExecRequest is a process to run in a machine.
type ExecRequest struct {
	Cmd        []string `json:"cmd"`
	Env        []string `json:"env,omitempty"`
	User       string   `json:"user,omitempty"`
	WorkingDir string   `json:"working_dir,omitempty"`
	TTY        bool     `json:"tty,omitempty"`
	Stdin      bool     `json:"stdin,omitempty"`
	Rows       int      `json:"rows,omitempty"`
	Cols       int      `json:"cols,omitempty"`
	// Entrypoint attaches to the entrypoint of a machine created with
	// Init.Attach instead of running Cmd (which must be empty, as must
	// Env, User and WorkingDir): the entrypoint starts with this stdio
	// and the exit code is the machine's. TTY must match Init.TTY.
	Entrypoint bool `json:"entrypoint,omitempty"`
}

// validate checks r's shape.
func (r ExecRequest) validate() error {
	if r.Entrypoint {
		if len(r.Cmd) > 0 || len(r.Env) > 0 || r.User != "" || r.WorkingDir != "" {
			return fmt.Errorf("exec: entrypoint excludes cmd, env, user and working_dir: %w", errdefs.ErrInvalidArgument)
		}
		return nil
	}
	if len(r.Cmd) == 0 {
		return fmt.Errorf("exec: cmd: required: %w", errdefs.ErrInvalidArgument)
	}
	return nil
}

// ExecIO connects an exec'd process. Stdin is nil when not attached;
// Stderr is unused with a TTY. Resize carries window sizes.
type ExecIO struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Resize <-chan WindowSize
}

// WindowSize is a terminal size.
type WindowSize struct {
	Rows int `json:"rows"`
	Cols int `json:"cols"`
}

// ConsoleExit recovers an exit status from a console log after the fact
// (init prints a marker line); nil when none is found.
type ConsoleExit func(consoleLog string) *Exit
