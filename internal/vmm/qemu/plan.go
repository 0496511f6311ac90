package qemu

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"github.com/ferryvm/ferry/internal/vmm"
)

// Plan turns spec into a qemu-system-x86_64 command line. The argv is fixed
// by spec and the accelerator alone, so it is golden-tested.
func (d *Driver) Plan(spec vmm.Spec) (*vmm.Plan, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	accel, _ := d.Accel()
	cmdline, err := d.cmdline(spec, accel)
	if err != nil {
		return nil, err
	}
	path := d.binary
	if p, err := exec.LookPath(d.binary); err == nil {
		path = p
	}
	p := &vmm.Plan{
		Driver:   d.Name(),
		Path:     path,
		Stdout:   spec.VMMLogPath(),
		Stderr:   spec.VMMLogPath(),
		PIDFile:  spec.PIDFile(),
		Marker:   spec.Marker(),
		Accel:    accel,
		Emulated: accel == AccelTCG,
	}
	cpu := "host"
	if accel == AccelTCG {
		cpu = "max"
	}
	a := []string{d.binary,
		"-name", spec.Marker(),
		"-M", machine(spec),
		"-accel", accel,
		"-cpu", cpu,
		"-smp", strconv.Itoa(spec.VCPUs),
		"-m", strconv.Itoa(spec.MemoryMiB) + "M",
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-kernel", spec.Kernel,
	}
	if spec.Initrd != "" {
		a = append(a, "-initrd", spec.Initrd)
	}
	a = append(a, "-append", cmdline,
		"-chardev", "file,id=console,path="+esc(spec.ConsoleLog)+",append=on",
		"-serial", "chardev:console")
	for _, dr := range spec.Drives {
		opt := "id=" + dr.ID + ",file=" + esc(dr.Path) + ",format=raw,if=none"
		if dr.ReadOnly {
			opt += ",readonly=on"
		} else {
			opt += ",discard=unmap"
		}
		a = append(a, "-drive", opt, "-device", "virtio-blk-device,drive="+dr.ID)
	}
	for _, n := range spec.NICs {
		var nd string
		if n.File != nil {
			fd := 3 + len(p.Extra)
			p.Extra = append(p.Extra, vmm.ExtraFile{FD: fd, Name: "tap:" + n.Tap, File: n.File})
			nd = "tap,id=" + n.ID + ",fd=" + strconv.Itoa(fd)
		} else {
			nd = "tap,id=" + n.ID + ",ifname=" + esc(n.Tap) + ",script=no,downscript=no"
		}
		a = append(a, "-netdev", nd, "-device", "virtio-net-device,netdev="+n.ID+",mac="+n.MAC)
	}
	a = append(a,
		"-device", "virtio-serial-device",
		"-chardev", "socket,id=ctl,path="+esc(spec.Control.Socket)+",server=on,wait=off",
		"-device", "virtserialport,chardev=ctl,name="+vmm.ControlPortName)
	p.Args = a
	return p, nil
}

// cmdline prepends what this driver needs to the caller's kernel command
// line, each only when the caller did not set it: the console on the serial
// port, a triple-fault reboot (with -no-reboot QEMU exits when the guest
// reboots, which is how ferry-init ends the VM), panic=-1 (a panic reboots,
// so QEMU exits instead of hanging), and under TCG tsc_early_khz.
func (d *Driver) cmdline(spec vmm.Spec, accel string) (string, error) {
	var pre []string
	has := func(key string) bool {
		for _, f := range strings.Fields(spec.Cmdline) {
			if f == "--" {
				return false
			}
			if strings.HasPrefix(f, key+"=") {
				return true
			}
		}
		return false
	}
	for _, kv := range [][2]string{{"console", "ttyS0"}, {"reboot", "t"}, {"panic", "-1"}} {
		if !has(kv[0]) {
			pre = append(pre, kv[0]+"="+kv[1])
		}
	}
	if accel == AccelTCG && !has("tsc_early_khz") {
		khz := d.tscKHz
		if khz == 0 {
			t, err := d.tsc()
			if err != nil {
				return "", fmt.Errorf("qemu under TCG: %w", err)
			}
			khz = t.KHz
		}
		pre = append(pre, "tsc_early_khz="+strconv.FormatUint(khz, 10))
	}
	return strings.TrimSpace(strings.Join(pre, " ") + " " + spec.Cmdline), nil
}

// machine is the -M value: microvm without option ROMs, with the RTC (without
// kvmclock, a guest without one spends ~1.8 s probing for it under TCG, and it
// gives the guest the wall-clock time), and without
// ACPI unless the kernel needs it (devices are then on the command line).
func machine(spec vmm.Spec) string {
	m := "microvm,x-option-roms=off,rtc=on"
	if !spec.ACPI {
		m += ",acpi=off"
	}
	return m
}

// esc doubles commas, QEMU's escape inside an option value.
func esc(s string) string { return strings.ReplaceAll(s, ",", ",,") }
