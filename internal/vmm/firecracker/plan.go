package firecracker

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/vmm"
)

// ConfigFile is the config's name in the machine directory (or the jail).
const ConfigFile = "firecracker.json"

// Config renders spec as Firecracker's config file. paths maps host paths to
// the paths Firecracker sees (identity without jailer).
func (d *Driver) Config(spec vmm.Spec) (*Config, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	jailed := d.jailer != nil
	in := func(host, jail string) string {
		if jailed {
			return jail
		}
		return host
	}
	c := &Config{
		BootSource: BootSource{
			KernelImagePath: in(spec.Kernel, jailKernel),
			BootArgs:        cmdline(spec.Cmdline),
		},
		Drives: []Drive{},
		MachineConfig: MachineConfig{
			VCPUCount:  spec.VCPUs,
			MemSizeMiB: spec.MemoryMiB,
		},
		Vsock: &Vsock{GuestCID: cid(spec), UDSPath: spec.Control.Socket},
	}
	if len(spec.Shares) > 0 {
		return nil, fmt.Errorf("firecracker has no file sharing (no virtio-fs or 9p), so bind mounts of host directories are not possible: use --vmm qemu, or a volume: %w", errdefs.ErrInvalidArgument)
	}
	if spec.VCPUs > 1 && spec.VCPUs%2 != 0 {
		return nil, fmt.Errorf("firecracker: %d vCPUs: Firecracker takes 1 or an even number: %w", spec.VCPUs, errdefs.ErrInvalidArgument)
	}
	if spec.Initrd != "" {
		c.BootSource.InitrdPath = in(spec.Initrd, jailInitrd)
	}
	for _, dr := range spec.Drives {
		c.Drives = append(c.Drives, Drive{
			DriveID: dr.ID, PathOnHost: in(dr.Path, jailDrive(dr.ID)), IsReadOnly: dr.ReadOnly,
		})
	}
	for _, n := range spec.NICs {
		if n.Tap == "" {
			return nil, fmt.Errorf("firecracker: nic %s: Firecracker opens the TAP by name: %w", n.ID, errdefs.ErrInvalidArgument)
		}
		c.NetworkInterfaces = append(c.NetworkInterfaces, NetworkInterface{
			IfaceID: n.ID, HostDevName: n.Tap, GuestMAC: n.MAC,
		})
	}
	if d.jailer != nil {
		c.Vsock.UDSPath = "/control.sock"
		c.Logger = &Logger{LogPath: jailLog, Level: d.logLevel, ShowLevel: true}
	} else {
		c.Logger = &Logger{LogPath: spec.VMMLogPath(), Level: d.logLevel, ShowLevel: true}
	}
	return c, nil
}

// Plan renders the config and the command that runs it.
func (d *Driver) Plan(spec vmm.Spec) (*vmm.Plan, error) {
	c, err := d.Config(spec)
	if err != nil {
		return nil, err
	}
	p := &vmm.Plan{
		Driver: d.Name(),
		// The serial console is Firecracker's stdout: a pipe to the
		// console writer.
		Console: &vmm.ConsoleLog{Path: spec.ConsoleLog, Max: d.consoleMax, Keep: d.consoleKeep, Stdout: true},
		Stderr:  spec.VMMLogPath(),
		PIDFile: spec.PIDFile(),
		Marker:  spec.Marker(),
		Accel:   "kvm",
	}
	if d.jailer == nil {
		cfgPath := filepath.Join(spec.Dir, ConfigFile)
		p.Files = []vmm.File{{Path: cfgPath, Content: string(c.JSON()), Mode: 0o600}}
		fc := []string{d.binary, "--id", spec.Marker(), "--no-api", "--config-file", cfgPath}
		if spec.NetNS != "" {
			// Firecracker opens its TAPs by name: run it inside their
			// netns. nsenter joins that namespace alone; `ip netns exec`
			// would also give the VMM a copy of the host's mount table,
			// which keeps every filesystem mounted at that moment alive
			// (its journal unflushed, its loop device attached) after the
			// host unmounts it, for as long as the VM runs.
			p.Path = lookPath("nsenter")
			p.Args = append([]string{"nsenter", "--net=" + spec.NetNSPath(), "--"}, fc...)
		} else {
			p.Path = lookPath(d.binary)
			p.Args = fc
		}
		return p, nil
	}

	j := d.jailer
	root := d.chrootRoot(spec)
	sb := &vmm.Sandbox{UIDs: j.UIDs, DropsItself: true}
	cfgPath := filepath.Join(root, ConfigFile)
	logPath := filepath.Join(root, jailLog)
	p.Files = []vmm.File{
		{Path: cfgPath, Content: string(c.JSON()), Mode: 0o600},
		{Path: logPath, Mode: 0o600}, // Firecracker's logger opens it, never creates it
	}
	sb.Chown = append(sb.Chown, cfgPath, logPath)
	// Shared files (kernel, read-only bases) are linked as they are —
	// world-readable, inside 0700 directories, and a hard link shares its
	// inode — and per-machine ones are given to the VMM's uid.
	p.Links = append(p.Links, vmm.Link{Source: spec.Kernel, Target: filepath.Join(root, jailKernel)})
	if spec.Initrd != "" {
		t := filepath.Join(root, jailInitrd)
		p.Links = append(p.Links, vmm.Link{Source: spec.Initrd, Target: t})
		sb.Chown = append(sb.Chown, t)
	}
	for _, dr := range spec.Drives {
		t := filepath.Join(root, jailDrive(dr.ID))
		p.Links = append(p.Links, vmm.Link{Source: dr.Path, Target: t})
		if !dr.ReadOnly {
			sb.Chown = append(sb.Chown, t) // per-machine scratch: Firecracker must write it
		}
	}
	for _, n := range spec.NICs {
		if n.File != nil {
			// Firecracker opens the TAP by name as its uid: Run makes that
			// uid the TAP's owner (jailer closes the descriptor itself).
			p.Extra = append(p.Extra, vmm.ExtraFile{FD: 3 + len(p.Extra), Name: "tap:" + n.Tap, File: n.File, Tap: true})
		}
	}
	if j.CgroupParent != "" {
		sb.Cgroup = &vmm.Cgroup{
			Path:      j.CgroupParent + "/" + spec.Marker(),
			MemoryMax: int64(spec.MemoryMiB+memOverheadMiB) << 20,
			PidsMax:   pidsBase + pidsPerVCPU*spec.VCPUs,
			CPUs:      spec.VCPUs + 1,
		}
	}
	p.Sandbox = sb
	p.Path = lookPath(j.Binary)
	p.Args = []string{j.Binary,
		"--id", spec.Marker(),
		"--exec-file", lookPath(d.binary),
		"--uid", vmm.UIDArg,
		"--gid", vmm.GIDArg,
		"--chroot-base-dir", j.ChrootBase,
	}
	if spec.NetNS != "" {
		p.Args = append(p.Args, "--netns", spec.NetNSPath())
	}
	p.Args = append(p.Args, "--", "--no-api", "--config-file", "/"+ConfigFile)
	return p, nil
}

// A jailed Firecracker's cgroup: guest RAM plus its own overhead (a few
// MiB of VMM; the margin is for its buffers and page tables), its threads
// (API, VMM, one per vCPU, I/O), vCPUs + 1 CPUs of time.
const (
	memOverheadMiB = 128
	pidsBase       = 32
	pidsPerVCPU    = 2
)

// Where host files appear inside the jail (hard-linked in by the plan; keep
// the chroot base on the data dir's filesystem or they are copied), so a
// jailed config never names host paths.
const (
	jailKernel = "/vmlinux"
	jailInitrd = "/initrd"
	jailLog    = "/firecracker.log"
)

func jailDrive(id string) string { return "/drives/" + id }

// cmdline prepends Firecracker's usual guest settings the caller did not
// set: serial console, keyboard-controller reboot (Firecracker exits when
// the guest reboots) and panic=1.
func cmdline(base string) string {
	var pre []string
	for _, kv := range [][2]string{{"console", "ttyS0"}, {"reboot", "k"}, {"panic", "1"}, {"pci", "off"}} {
		if !strings.Contains(" "+base, " "+kv[0]+"=") {
			pre = append(pre, kv[0]+"="+kv[1])
		}
	}
	return strings.TrimSpace(strings.Join(pre, " ") + " " + base)
}

func cid(spec vmm.Spec) uint32 {
	if spec.Control.VsockCID >= 3 {
		return spec.Control.VsockCID
	}
	return 3
}
