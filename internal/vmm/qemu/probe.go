package qemu

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/vmm"
)

// ProbeTimeout bounds the KVM probe boot.
const ProbeTimeout = 5 * time.Second

// Probe checks, once per Driver, that KVM really runs the guest kernel: a
// /dev/kvm that opens and creates VMs is not enough (nested hosts exist
// where QEMU aborts setting MSRs, or the guest hangs right after the
// decompressor). It boots kernel under KVM with no root and no initrd; a
// working KVM prints the banner, panics for want of a root and, with
// panic=-1 and -no-reboot, exits 0 in well under a second. Anything else
// switches an "auto" driver to TCG. Start runs it; the daemon may run it
// early to report the accelerator at startup.
func (d *Driver) Probe(ctx context.Context, kernel string) (string, error) {
	return d.probe(ctx, vmm.Spec{Kernel: kernel})
}

func (d *Driver) probe(ctx context.Context, spec vmm.Spec) (string, error) {
	accel, why := d.Accel()
	if d.accel != AccelAuto || accel != AccelKVM {
		return accel, why
	}
	d.probeMu.Lock()
	defer d.probeMu.Unlock()
	if !d.probed {
		d.probed = true
		if err := d.probeKVM(ctx, spec); err != nil {
			d.resolved, d.why = AccelTCG, err
		}
	}
	return d.resolved, d.why
}

func (d *Driver) probeKVM(ctx context.Context, spec vmm.Spec) error {
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.binary,
		"-M", machine(spec), "-accel", "kvm", "-cpu", "host",
		"-smp", "1", "-m", "64M", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "stdio", "-kernel", spec.Kernel, "-append", "console=ttyS0 panic=-1 reboot=t")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("kvm probe: guest kernel did not finish booting under KVM in %v: %w", ProbeTimeout, errdefs.ErrUnavailable)
	case err != nil:
		return fmt.Errorf("kvm probe: qemu -accel kvm: %w: %s: %w", err, lastLine(out.String()), errdefs.ErrUnavailable)
	case !strings.Contains(out.String(), "Linux version"):
		return fmt.Errorf("kvm probe: no kernel banner under KVM: %w", errdefs.ErrUnavailable)
	}
	return nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
