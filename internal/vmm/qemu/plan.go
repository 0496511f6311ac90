package qemu

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/vmm"
)

// Sandbox is QEMU's own seccomp filter (-sandbox): no obsolete system
// calls, no set*uid/set*gid, no fork/exec, no scheduler or resource-limit
// changes. It is installed before the guest runs, whatever uid QEMU has.
const Sandbox = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"

// Plan turns spec into a qemu-system-x86_64 command line. The argv is fixed
// by spec and the accelerator alone, so it is golden-tested.
//
// QEMU opens no path of the machine itself: kernel and initrd are read
// through /proc/self/fd, drives and the console are descriptor sets
// (-add-fd, /dev/fdset/N; a writable drive gets a read-only and a
// read-write descriptor, as QEMU reopens it both ways), the control socket
// is a listening socket it accepts on (fd=), the TAP is open already. So it
// can run as a uid that owns nothing (the driver's sandbox, on by default
// for root).
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
		Console:  &vmm.ConsoleLog{Path: spec.ConsoleLog, Max: d.consoleMax, Keep: d.consoleKeep},
	}
	fd := func(x vmm.ExtraFile) string {
		x.FD = 3 + len(p.Extra)
		p.Extra = append(p.Extra, x)
		return strconv.Itoa(x.FD)
	}
	sets := 0
	fdset := func(opaque string, xs ...vmm.ExtraFile) (args []string, file string) {
		sets++
		set := strconv.Itoa(sets)
		for _, x := range xs {
			args = append(args, "-add-fd", "fd="+fd(x)+",set="+set+",opaque="+esc(opaque))
		}
		return args, "/dev/fdset/" + set
	}
	cpu, accelOpt := "host", accel
	if accel == AccelTCG {
		// The translation cache is bounded (QEMU 7.2 takes up to 1 GiB),
		// so the VMM fits its cgroup (tcgOverheadMiB) whatever code the
		// guest runs.
		cpu, accelOpt = "max", accel+",tb-size="+strconv.Itoa(tcgCacheMiB)
	}
	m := machine(spec)
	if len(spec.Shares) > 0 {
		// vhost-user devices need the guest's memory shared with virtiofsd.
		m += ",memory-backend=mem"
	}
	a := []string{d.binary,
		"-name", spec.Marker(),
		"-M", m,
		"-accel", accelOpt,
		"-cpu", cpu,
		"-smp", strconv.Itoa(spec.VCPUs),
		"-m", strconv.Itoa(spec.MemoryMiB) + "M",
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-sandbox", Sandbox,
		"-kernel", "/proc/self/fd/" + fd(vmm.ExtraFile{Name: "kernel", Path: spec.Kernel}),
	}
	if spec.Initrd != "" {
		a = append(a, "-initrd", "/proc/self/fd/"+fd(vmm.ExtraFile{Name: "initrd", Path: spec.Initrd}))
	}
	a = append(a, "-append", cmdline)
	add, file := fdset("console:"+spec.ConsoleLog, vmm.ExtraFile{Name: "console", Console: true})
	a = append(a, add...)
	a = append(a, "-chardev", "file,id=console,path="+file+",append=on", "-serial", "chardev:console")
	for _, dr := range spec.Drives {
		xs := []vmm.ExtraFile{{Name: "drive:" + dr.ID, Path: dr.Path}}
		if !dr.ReadOnly {
			xs = append(xs, vmm.ExtraFile{Name: "drive:" + dr.ID, Path: dr.Path, Write: true})
		}
		add, file := fdset(dr.Path, xs...)
		opt := "id=" + dr.ID + ",file=" + file + ",format=raw,if=none"
		if dr.ReadOnly {
			opt += ",readonly=on"
		} else {
			opt += ",discard=unmap"
		}
		if spec.Spare {
			// Named nodes, so Claim can swap the placeholder file for the
			// machine's own (blockdev-reopen).
			opt += ",node-name=" + formatNode(dr.ID) + ",file.node-name=" + fileNode(dr.ID, 0)
		}
		if dr.Resizable {
			// block_resize re-takes the image's byte-range locks, which
			// fails on a file QEMU got as an fd set; one writer per volume
			// is ferry's own rule (internal/volume).
			opt += ",file.locking=off"
		}
		a = append(a, add...)
		a = append(a, "-drive", opt, "-device", "virtio-blk-device,drive="+dr.ID)
	}
	for i, n := range spec.NICs {
		var nd string
		switch {
		case spec.Spare:
			// A hub port on hub i: Claim joins the machine's i-th TAP to
			// it. Until then a second, peerless port takes and drops what
			// the guest sends (a rehearsal's IPv6 and MLD packets): a hub
			// with no other port refuses them, and the NIC's queue would
			// stall for good.
			hub := strconv.Itoa(i)
			nd = "hubport,id=" + n.ID + ",hubid=" + hub
			a = append(a, "-netdev", "hubport,id="+sinkPort(n.ID)+",hubid="+hub)
		case n.File != nil && n.Socket:
			nd = "socket,id=" + n.ID + ",fd=" + fd(vmm.ExtraFile{Name: "socket:" + n.ID, File: n.File})
		case n.File != nil:
			nd = "tap,id=" + n.ID + ",fd=" + fd(vmm.ExtraFile{Name: "tap:" + n.Tap, File: n.File})
		case d.sandbox != nil:
			return nil, fmt.Errorf("qemu: nic %s: a sandboxed QEMU cannot open TAP %s itself (no CAP_NET_ADMIN): pass it open: %w",
				n.ID, n.Tap, errdefs.ErrInvalidArgument)
		default:
			nd = "tap,id=" + n.ID + ",ifname=" + esc(n.Tap) + ",script=no,downscript=no"
		}
		a = append(a, "-netdev", nd, "-device", "virtio-net-device,netdev="+n.ID+",mac="+n.MAC)
	}
	if len(spec.Shares) > 0 {
		if err := d.planShares(spec, p, &a, fd); err != nil {
			return nil, err
		}
	}
	if slices.ContainsFunc(spec.Drives, func(d vmm.Drive) bool { return d.Resizable }) {
		a = append(a, "-chardev", "socket,id=qmp,fd="+fd(vmm.ExtraFile{Name: "qmp", Path: QMPPath(spec.Dir), Listen: true})+",server=on,wait=off",
			"-mon", "chardev=qmp,mode=control")
	}
	a = append(a,
		"-device", "virtio-serial-device",
		"-chardev", "socket,id=ctl,fd="+fd(vmm.ExtraFile{Name: "control", Path: spec.Control.Socket, Listen: true})+",server=on,wait=off",
		"-device", "virtserialport,chardev=ctl,name="+vmm.ControlPortName)
	p.Args = a
	p.Sandbox = d.sandboxFor(spec, accel)
	return p, nil
}

// Overheads of a QEMU process beyond guest RAM, for its cgroup: its own
// heap and device state, and under TCG the translation cache (bounded with
// tb-size; QEMU touches it only as the guest runs new code). A 128 MiB
// guest's QEMU peaked at 85 MiB in all under TCG (TestSandboxedQEMU).
const (
	memOverheadMiB    = 192
	tcgCacheMiB       = 256
	tcgOverheadMiB    = tcgCacheMiB
	pidsBase          = 96 // main loop, RCU, I/O worker pool (up to 64), signals
	pidsPerVCPU       = 2
	cpuOverheadCPUs   = 1
	defaultCgroupRoot = "ferry"
)

// sandboxFor is the confinement of spec's QEMU, or nil without one.
func (d *Driver) sandboxFor(spec vmm.Spec, accel string) *vmm.Sandbox {
	if d.sandbox == nil {
		return nil
	}
	sb := &vmm.Sandbox{UIDs: d.sandbox.uids}
	if spec.Initrd != "" {
		sb.Chown = []string{spec.Initrd} // per machine: it holds the run config
	}
	if accel == AccelKVM {
		if gid, ok := kvmGroup(); ok {
			sb.Groups = []int{gid}
		}
	}
	if d.sandbox.cgroupParent != "" {
		mem := spec.MemoryMiB + memOverheadMiB
		if accel == AccelTCG {
			mem += tcgOverheadMiB
		}
		sb.Cgroup = &vmm.Cgroup{
			Path:      d.sandbox.cgroupParent + "/" + spec.Marker(),
			MemoryMax: int64(mem) << 20,
			PidsMax:   pidsBase + pidsPerVCPU*spec.VCPUs,
			CPUs:      spec.VCPUs + cpuOverheadCPUs,
		}
	}
	return sb
}

// cmdline prepends what this driver needs to the caller's kernel command
// line, each only when the caller did not set it: the console on the serial
// port, a triple-fault reboot (with -no-reboot QEMU exits when the guest
// reboots, which is how ferry-init ends the VM), panic=-1 (a panic reboots,
// so QEMU exits instead of hanging), and under TCG tsc_early_khz and
// tsc=reliable. A TCG guest's TSC is the host's (constant, invariant); the
// clocksource watchdog would check it against jiffies, which a loaded host
// delivers late, mark it unstable and leave the guest on a 10 ms jiffies
// clock for good — and it keeps a booting guest on jiffies until the check
// passes, which a template must wait out before it is saved.
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
	if accel == AccelTCG && !has("tsc") {
		pre = append(pre, "tsc=reliable")
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

// planShares adds a virtiofsd helper and a vhost-user-fs device per share,
// and the shared memory backend they need. QEMU gets each helper's socket
// connected (fd=): it reaches no path.
func (d *Driver) planShares(spec vmm.Spec, p *vmm.Plan, a *[]string, fd func(vmm.ExtraFile) string) error {
	bin, err := d.virtiofsdPath()
	if err != nil {
		return err
	}
	// virtiofsd (libvhost-user) serves only virtio 1.0 devices, and
	// QEMU's virtio-mmio is legacy (0.9.5) unless told otherwise
	// (Firecracker's is 1.0 too).
	*a = append(*a, "-global", "virtio-mmio.force-legacy=false",
		"-object", "memory-backend-memfd,id=mem,size="+strconv.Itoa(spec.MemoryMiB)+"M,share=on")
	for i, sh := range spec.Shares {
		name := "virtiofsd-" + sh.Tag
		sock := filepath.Join(spec.Dir, fmt.Sprintf("fs%d.sock", i))
		h := vmm.Helper{
			Name: name, Path: bin,
			// --fd and -o source/cache: what both the C virtiofsd (QEMU
			// 7.2, Debian 12) and the Rust one (Debian 13) accept.
			Args:    []string{vmm.HelperMarker(spec, name), "--fd=3", "-o", "source=" + sh.Source, "-o", "cache=auto"},
			Log:     spec.VMMLogPath(),
			PIDFile: vmm.HelperPIDFile(spec.Dir, name),
			Listen:  sock,
		}
		if sh.ReadOnly {
			h.ReadOnly = []string{sh.Source}
		}
		p.Helpers = append(p.Helpers, h)
		id := fmt.Sprintf("fs%d", i)
		conn := fd(vmm.ExtraFile{Name: "share:" + sh.Tag, Path: sock, Dial: true})
		*a = append(*a, "-chardev", "socket,id="+id+",fd="+conn,
			"-device", "vhost-user-fs-device,chardev="+id+",tag="+sh.Tag)
	}
	return nil
}

// VirtiofsdPaths are where virtiofsd is looked for, in order: Debian 13's
// virtiofsd package, then QEMU's own (qemu-system-common up to QEMU 7.2).
var VirtiofsdPaths = []string{"/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd"}

func (d *Driver) virtiofsdPath() (string, error) {
	if d.virtiofsd != "" {
		return d.virtiofsd, nil
	}
	for _, p := range VirtiofsdPaths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	if p, err := exec.LookPath("virtiofsd"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("bind mounts need virtiofsd (looked in %s and PATH; Debian 12: qemu-system-common, Debian 13: the virtiofsd package): %w",
		strings.Join(VirtiofsdPaths, ", "), errdefs.ErrUnavailable)
}
