package machine

import (
	"context"
	"fmt"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/image"
	"github.com/ferryvm/ferry/internal/kernel"
	"github.com/ferryvm/ferry/internal/network"
	"github.com/ferryvm/ferry/internal/rootfs"
	"github.com/ferryvm/ferry/internal/vmm"
)

// The interfaces below are what the machine lifecycle needs from the rest of
// ferry; the real packages satisfy them as they are (internal/daemon only
// wires them) and tests use fakes. Every method that changes the system is
// idempotent and keyed by the machine ID, so the lifecycle can re-run any
// step after a crash.

// Images finds an image in the cache, pulling it when it is not there (an
// *image.Store).
type Images interface {
	Ensure(ctx context.Context, ref string, opts ...image.PullOption) (v1.Image, v1.Hash, error)
}

// Image is a resolved image: the reference it was asked for, its manifest
// digest (which keys the rootfs base) and its runtime config.
type Image struct {
	Ref    string
	Digest string
	Config guest.Image
	// Volumes are the image's VOLUME paths (anonymous volumes).
	Volumes []string
	// Healthcheck is the image's HEALTHCHECK.
	Healthcheck *types.Healthcheck
}

// Rootfs gives a machine its disks (a *rootfs.Manager).
type Rootfs interface {
	// PrepareImage makes sure the base of the image with manifest digest d
	// exists and the machine's own disks (scratch) exist, and holds the
	// base for id.
	PrepareImage(ctx context.Context, id string, d v1.Hash) (rootfs.Disks, error)
	// Release removes the machine's disks and lease. Missing is fine.
	Release(ctx context.Context, id string) error
	// Reconcile removes disks and leases of machines not in keep.
	Reconcile(ctx context.Context, keep []string) error
	// View runs fn with the machine's root filesystem as its goroutine's
	// root directory (writable or read-only); the machine is not running.
	View(ctx context.Context, id string, writable bool, fn func() error) error
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

// VM is what the lifecycle asks a hypervisor to run: a VMM spec and the
// driver to run it with.
type VM struct {
	Driver string // "qemu", "firecracker"; "" picks the default
	Spec   vmm.Spec
}

// Hypervisor runs VMM processes (internal/daemon's thin adapter over a
// *vmm.Drivers).
type Hypervisor interface {
	// Start launches the VMM in its own session; it outlives the daemon.
	Start(ctx context.Context, vm VM) (Process, error)
	// Adopt finds the live VMM of a machine (pid file + start time +
	// marker); an error wrapping errdefs.ErrNotFound means none runs.
	Adopt(ctx context.Context, vm VM) (Process, error)
	// Connect dials the guest's control channel and returns once the guest
	// answers on it (a connection alone does not prove the guest is up). An
	// error wrapping errors.ErrUnsupported means the driver has none: the
	// machine runs without exec and signals, exits are read off the console.
	Connect(ctx context.Context, vm VM) (Control, error)
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

// Control is the host end of a guest's control channel (a *guest.Client).
type Control interface {
	// Wait returns the entrypoint's exit once it has exited.
	Wait(ctx context.Context) (guest.ExitStatus, error)
	// SignalEntrypoint delivers sig to the entrypoint once init started it.
	SignalEntrypoint(ctx context.Context, sig syscall.Signal) error
	// Run runs a process in the guest with stdio and returns its status.
	Run(ctx context.Context, req guest.ExecRequest, stdio guest.ExecIO) (guest.ExitStatus, error)
	Close() error
}

var _ Control = (*guest.Client)(nil)

// validateExec checks r's shape.
func validateExec(r types.ExecRequest) error {
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
