package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/ferryvm/ferry/internal/machine"
	"github.com/ferryvm/ferry/internal/vmm"
	"github.com/ferryvm/ferry/internal/vmm/qemu"
	"github.com/ferryvm/ferry/internal/vmm/template"
)

// warmVMM adapts the QEMU driver's templates and restores to
// machine.Warm (docs/warm-starts.md; `ferry daemon --warm-starts`).
type warmVMM struct {
	h      *hypervisor
	q      *qemu.Driver
	hasher template.Hasher
}

var _ machine.Warm = (*warmVMM)(nil)

func (w *warmVMM) Key(ctx context.Context, vm machine.VM) (template.Key, error) {
	drv, err := w.h.drivers.Select(vm.Driver)
	if err != nil {
		return template.Key{}, err
	}
	if drv.Name() != w.q.Name() {
		return template.Key{}, fmt.Errorf("%s machines have no warm starts yet: %w", drv.Name(), errors.ErrUnsupported)
	}
	if len(vm.Spec.Shares) > 0 {
		// vhost-user-fs devices cannot be migrated.
		return template.Key{}, fmt.Errorf("a machine with bind mounts (virtio-fs) cannot be restored: %w", errors.ErrUnsupported)
	}
	v, err := w.q.Version(ctx)
	if err != nil {
		return template.Key{}, err
	}
	accel, _ := w.q.Accel()
	return template.SpecKey(vm.Spec, template.VMMInfo{Name: w.q.Name(), Version: v, Accel: accel, Control: "serial"}, &w.hasher)
}

func (w *warmVMM) StartTemplate(ctx context.Context, vm machine.VM, mem *os.File) (machine.Process, error) {
	return w.start(ctx, vm, func() (*vmm.Process, error) { return w.q.StartTemplate(ctx, vm.Spec, mem) })
}

func (w *warmVMM) Save(ctx context.Context, vm machine.VM, f *os.File) error {
	return qemu.Save(ctx, vm.Spec.Dir, f)
}

func (w *warmVMM) StartRestore(ctx context.Context, vm machine.VM, state string, mem *os.File) (machine.Process, error) {
	p, err := w.start(ctx, vm, func() (*vmm.Process, error) { return w.q.StartRestore(ctx, vm.Spec, state, mem) })
	if err == nil {
		w.h.rotator.Add(vm.Spec.ConsoleLog)
	}
	return p, err
}

func (w *warmVMM) Resume(ctx context.Context, vm machine.VM) error {
	return qemu.Resume(ctx, vm.Spec.Dir, vm.Spec.Drives)
}

// start runs a VMM as hypervisor.Start does: no stale control socket, and
// the record a later adopt reads.
func (w *warmVMM) start(ctx context.Context, vm machine.VM, start func() (*vmm.Process, error)) (machine.Process, error) {
	_ = os.Remove(vm.Spec.Control.Socket)
	p, err := start()
	if err != nil {
		return nil, err
	}
	if err := vmm.WriteRecord(vm.Spec, p); err != nil {
		w.h.log.Warn("record vmm plan", "machine", vm.Spec.ID, "err", err)
	}
	return process{p}, nil
}

func (w *warmVMM) Claim(ctx context.Context, spare, vm machine.VM) error {
	if err := qemu.Claim(ctx, spare.Spec.Dir, spare.Spec, vm.Spec.Drives, vm.Spec.NICs); err != nil {
		return err
	}
	// A later adopt reads the machine's own spec beside the spare's plan.
	r, err := vmm.ReadRecord(spare.Spec.Dir)
	if err == nil {
		r.Spec = vm.Spec
		err = vmm.WriteRecordOf(*r)
	}
	if err != nil {
		w.h.log.Warn("record vmm plan", "machine", vm.Spec.ID, "err", err)
	}
	return nil
}
