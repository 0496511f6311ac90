package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/machine"
	"github.com/ferryvm/ferry/internal/vmm"
	"github.com/ferryvm/ferry/internal/vmm/qemu"
)

// hypervisor adapts the VMM drivers and the guest control client to
// machine.Hypervisor.
type hypervisor struct {
	drivers  *vmm.Drivers
	machines string // paths.Root.Machines: the VMMs Reap may touch
	rotator  *vmm.Rotator
	log      *slog.Logger
	// violation records a guest's control-protocol violation.
	violation func(id string, err error)
}

var _ machine.Hypervisor = (*hypervisor)(nil)

func (h *hypervisor) Start(ctx context.Context, vm machine.VM) (machine.Process, error) {
	drv, err := h.drivers.Select(vm.Driver)
	if err != nil {
		return nil, err
	}
	_ = os.Remove(vm.Spec.Control.Socket) // a stale socket from an earlier run
	p, err := drv.Start(ctx, vm.Spec)
	if err != nil {
		return nil, err
	}
	if err := vmm.WriteRecord(vm.Spec, p); err != nil {
		h.log.Warn("record vmm plan", "machine", vm.Spec.ID, "err", err)
	}
	h.rotator.Add(vm.Spec.ConsoleLog)
	return process{p}, nil
}

func (h *hypervisor) Adopt(ctx context.Context, vm machine.VM) (machine.Process, error) {
	p, err := vmm.AdoptMachine(vm.Spec)
	if err != nil {
		return nil, err
	}
	if p.Driver == "" {
		p.Driver = vm.Driver // what the machine record says ran
	}
	h.rotator.Add(vm.Spec.ConsoleLog)
	return process{p}, nil
}

func (h *hypervisor) Connect(ctx context.Context, vm machine.VM) (machine.Control, error) {
	drv, err := h.drivers.Get(vm.Driver)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := drv.DialControl(cctx, vm.Spec)
	if err != nil {
		return nil, err
	}
	id := vm.Spec.ID
	return guest.NewClient(cctx, conn, guest.WithLogger(h.log.With("machine", id)),
		guest.WithViolationFunc(func(err error) {
			if h.violation != nil {
				h.violation(id, err)
			}
		}))
}

// ResizeDrive grows a running VM's drive (QEMU's block_resize; other
// VMMs cannot: the machine sees the size at its next start).
func (h *hypervisor) ResizeDrive(ctx context.Context, vm machine.VM, drive string, size int64) error {
	if vm.Driver != "qemu" {
		return fmt.Errorf("%s cannot grow a drive of a running VM: %w", vm.Driver, errors.ErrUnsupported)
	}
	return qemu.ResizeDrive(ctx, vm.Spec.Dir, drive, size)
}

func (h *hypervisor) Reap(ctx context.Context, keep []string) ([]string, error) {
	return vmm.Reap(ctx, h.machines, keep)
}

// process adapts *vmm.Process to machine.Process.
type process struct{ p *vmm.Process }

func (p process) PID() int       { return p.p.Pid }
func (p process) Kill() error    { return p.p.Kill() }
func (p process) Emulated() bool { return p.p.Emulated }
func (p process) Driver() string { return p.p.Driver }
func (p process) Wait(ctx context.Context) error {
	_, err := p.p.Wait(ctx)
	return err
}
