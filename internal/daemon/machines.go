package daemon

import (
	"context"
	"os"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/kernel"
	"github.com/ferryvm/ferry/internal/machine"
	"github.com/ferryvm/ferry/internal/network"
	"github.com/ferryvm/ferry/internal/vmm"
	"github.com/ferryvm/ferry/internal/vmm/firecracker"
	"github.com/ferryvm/ferry/internal/vmm/qemu"
)

// wireMachines builds the machine manager over the image cache, rootfs,
// kernel assets, VMM drivers and networks, reconciles what a previous
// daemon left, and serves the Machines and Networks APIs.
func wireMachines(ctx context.Context, d *daemon) error {
	log := d.log.With("svc", "machine")
	var users network.Users
	nw, err := openNetwork(ctx, d, &users)
	if err != nil {
		return err
	}
	// Firecracker first: it is chosen when it can run (binary + KVM).
	// Either VMM is confined: QEMU by its driver's sandbox (root's
	// default), Firecracker by jailer.
	var fc []firecracker.Option
	if os.Geteuid() == 0 {
		fc = append(fc, firecracker.WithJailer(firecracker.Jailer{ChrootBase: d.root.Jail(), CgroupParent: "ferry"}))
	}
	q := qemu.New(qemu.WithAccel(qemuAccel()))
	drivers := vmm.NewDrivers(d.cfg.VMM, firecracker.New(fc...), q)
	hv := &hypervisor{drivers: drivers, machines: d.root.Machines(), rotator: &vmm.Rotator{Logger: log}, log: log}
	deps := machine.Deps{
		Images:     d.images,
		Rootfs:     d.rootfs,
		Network:    nw,
		Boot:       kernel.NewAssets(d.root.Kernel(), log),
		Hypervisor: hv,
		Volumes:    d.volumes,
	}
	opts := machine.Options{MachinesDir: d.root.Machines(), DefaultVMM: d.cfg.VMM, Logger: log,
		BindAllowed: machine.RemoteBindPolicy(api.RemoteClient, d.cfg.RemoteBindPaths)}
	if !d.cfg.ColdBoots {
		deps.Warm, opts.TemplatesDir, opts.Spares = &warmVMM{h: hv, q: q}, d.root.WarmTemplates(), d.cfg.Spares
	}
	m, err := machine.New(d.db, deps, opts)
	if err != nil {
		return err
	}
	users = m.NetworkUsers
	d.volumeAPI.grow = m.GrowVolume
	hv.violation = m.GuestViolation
	d.machines, d.network = m, nw
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go hv.rotator.Run(rctx)
	d.onClose(func() error { cancel(); return m.Close() })
	if err := m.Reconcile(ctx); err != nil {
		log.Warn("reconcile machines", "err", err)
	}
	if d.cfg.Prewarm {
		m.Prewarm(rctx)
	}
	api.RegisterMachines(d.api, m)
	api.RegisterNetworks(d.api, nw, m)
	return nil
}

// qemuAccel is $FERRY_QEMU_ACCEL (kvm, tcg) or auto: a host whose /dev/kvm
// opens but cannot run guests (some nested setups) needs tcg forced.
func qemuAccel() string {
	if a := os.Getenv("FERRY_QEMU_ACCEL"); a != "" {
		return a
	}
	return qemu.AccelAuto
}
