package vmm

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// ControlPortName is the name of the virtio-serial port that carries the
// control channel under QEMU; ferry-init finds it as
// /sys/class/virtio-ports/*/name (and /dev/virtio-ports/<name>).
const ControlPortName = "ferry.control"

// DefaultVsockPort is the guest vsock port ferry-init listens on under
// Firecracker.
const DefaultVsockPort = 1024

// Spec is one machine as a VMM sees it. It is plain data: it prints, it
// marshals to JSON (the daemon keeps it as machines/<id>/vmm.json), and every
// driver turns it into a Plan without touching the system.
type Spec struct {
	// ID names the machine; it is also the marker ferry finds in the VMM's
	// command line when it re-adopts the process.
	ID string `json:"id"`
	// Dir is the machine's directory; drivers write their files there
	// (vmm.pid, firecracker.json, ...).
	Dir string `json:"dir"`

	Kernel  string `json:"kernel"`
	Initrd  string `json:"initrd,omitempty"`
	Cmdline string `json:"cmdline,omitempty"`
	// ACPI says the guest kernel finds its devices through ACPI: Debian's
	// modular fallback kernel, whose virtio_mmio is a module that never sees
	// virtio_mmio.device= on the command line. Otherwise (the built
	// vmlinux) QEMU runs microvm with acpi=off and lists the devices on the
	// command line; a partial ACPI in a minimal kernel breaks interrupt
	// routing (userspace console output never appears).
	ACPI bool `json:"acpi,omitempty"`

	VCPUs     int `json:"vcpus"`
	MemoryMiB int `json:"memory_mib"`

	Drives []Drive `json:"drives,omitempty"`
	NICs   []NIC   `json:"nics,omitempty"`
	// Shares are host directories the guest mounts over virtio-fs (QEMU
	// only: Firecracker has no file sharing).
	Shares []Share `json:"shares,omitempty"`

	Control Control `json:"control"`

	// Spare is a machine restored ahead of any request, kept ready for the
	// next machine of its shape (docs/warm-starts.md): its drives are
	// placeholders the VMM swaps for the machine's own and its NICs wait
	// for the machine's TAPs (qemu.Claim). QEMU only.
	Spare bool `json:"spare,omitempty"`

	// NetNS is the named network namespace (/var/run/netns/NAME) the
	// machine's TAPs live in, when the daemon's network side runs in one.
	// QEMU needs nothing from it (it inherits the open TAP); Firecracker is
	// started inside it.
	NetNS string `json:"netns,omitempty"`

	// ConsoleLog receives the guest's serial console (append-only; rotated
	// by a Rotator). VMMLog receives the VMM's own stdout/stderr and, for
	// Firecracker, its logger; when empty it defaults to Dir/vmm.log.
	ConsoleLog string `json:"console_log"`
	VMMLog     string `json:"vmm_log,omitempty"`
}

// Drive is a block device. The first drive is /dev/vda in the guest, the
// next /dev/vdb, and so on.
type Drive struct {
	ID       string `json:"id"`
	Path     string `json:"path"`
	ReadOnly bool   `json:"read_only,omitempty"`
	// Resizable drives may grow while the VM runs (a volume extended):
	// the QEMU driver then serves a QMP monitor (qemu.ResizeDrive).
	Resizable bool `json:"resizable,omitempty"`
}

// Share is a host directory shared with the guest over virtio-fs: the
// driver runs a virtiofsd for it (a Helper) and the guest mounts it by Tag
// (mount -t virtiofs TAG PATH).
type Share struct {
	Tag    string `json:"tag"`
	Source string `json:"source"` // absolute host directory
	// ReadOnly is enforced on the host: virtiofsd sees Source through a
	// read-only bind mount in a mount namespace of its own.
	ReadOnly bool `json:"read_only,omitempty"`
}

// NIC is a network interface backed by a host TAP device. QEMU takes the open
// TAP (File; the TAP may then live in another network namespace); Firecracker
// opens the TAP by Tap name itself.
type NIC struct {
	ID  string `json:"id"`
	Tap string `json:"tap"`
	// File is the open TAP (nil when the driver opens Tap by name). It is
	// passed to the VMM as an inherited descriptor and is not serialised.
	File *os.File `json:"-"`
	MAC  string   `json:"mac"`
	// Socket says File is a datagram socket, not a TAP: the placeholder
	// NIC of a warm-start template, which reaches no network (QEMU only).
	Socket bool `json:"socket,omitempty"`
}

// Control is the host end of the control channel: a unix socket the VMM
// creates. Under QEMU it is a virtio-serial port's chardev (connect and
// talk); under Firecracker it is the hybrid-vsock socket (connect, send
// "CONNECT <VsockPort>\n", read "OK <port>\n", then talk).
type Control struct {
	Socket    string `json:"socket"`
	VsockCID  uint32 `json:"vsock_cid,omitempty"`
	VsockPort uint32 `json:"vsock_port,omitempty"`
}

// MachineControl is the control channel of a machine whose directory is
// dir: Dir/control.sock, guest CID 3 and DefaultVsockPort under
// Firecracker.
func MachineControl(dir string) Control {
	return Control{Socket: filepath.Join(dir, "control.sock"), VsockCID: 3, VsockPort: DefaultVsockPort}
}

// machineIDRE keeps "ferry-<id>" a valid Firecracker/jailer --id
// ([a-zA-Z0-9-], at most 64 characters).
var (
	machineIDRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9-]{0,57}$`)
	idRE        = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{0,31}$`)
)

// Validate reports the first problem with s as an ErrInvalidArgument.
func (s Spec) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("vmm spec %q: %s: %w", s.ID, fmt.Sprintf(format, a...), errdefs.ErrInvalidArgument)
	}
	switch {
	case !machineIDRE.MatchString(s.ID):
		return bad("id must match %s", machineIDRE)
	case s.Dir == "" || !filepath.IsAbs(s.Dir):
		return bad("dir %q must be an absolute path", s.Dir)
	case s.Kernel == "":
		return bad("no kernel")
	case s.VCPUs < 1 || s.VCPUs > 32:
		return bad("vcpus %d out of range 1..32", s.VCPUs)
	case s.MemoryMiB < 16:
		return bad("memory %d MiB below 16 MiB", s.MemoryMiB)
	case s.ConsoleLog == "":
		return bad("no console log path")
	case s.Control.Socket == "":
		return bad("no control socket path")
	case len(s.Control.Socket) > 107:
		return bad("control socket path %q longer than a unix socket path may be", s.Control.Socket)
	}
	seen := map[string]bool{}
	for _, d := range s.Drives {
		if !idRE.MatchString(d.ID) || seen["d"+d.ID] {
			return bad("drive id %q invalid or repeated", d.ID)
		}
		seen["d"+d.ID] = true
		if d.Path == "" {
			return bad("drive %s has no path", d.ID)
		}
	}
	for _, sh := range s.Shares {
		if !idRE.MatchString(sh.Tag) || seen["s"+sh.Tag] {
			return bad("share tag %q invalid or repeated", sh.Tag)
		}
		seen["s"+sh.Tag] = true
		if !filepath.IsAbs(sh.Source) || filepath.Clean(sh.Source) != sh.Source {
			return bad("share %s: source %q is not a clean absolute path", sh.Tag, sh.Source)
		}
	}
	for _, n := range s.NICs {
		if !idRE.MatchString(n.ID) || seen["n"+n.ID] {
			return bad("nic id %q invalid or repeated", n.ID)
		}
		seen["n"+n.ID] = true
		if n.Tap == "" && n.File == nil && !s.Spare {
			return bad("nic %s has neither a tap name nor an open tap", n.ID)
		}
		if _, err := net.ParseMAC(n.MAC); err != nil || len(n.MAC) != 17 {
			return bad("nic %s mac %q is not a 48-bit MAC", n.ID, n.MAC)
		}
	}
	return nil
}

// PIDFile is where the VMM's pid file lives.
func (s Spec) PIDFile() string { return filepath.Join(s.Dir, "vmm.pid") }

// NetNSPath is the bind-mounted namespace file of NetNS, what nsenter and
// Firecracker's jailer take; "" when NetNS is.
func (s Spec) NetNSPath() string {
	if s.NetNS == "" {
		return ""
	}
	return filepath.Join("/var/run/netns", s.NetNS)
}

// VMMLogPath is VMMLog or its default.
func (s Spec) VMMLogPath() string {
	if s.VMMLog != "" {
		return s.VMMLog
	}
	return filepath.Join(s.Dir, "vmm.log")
}

// Marker is the token ferry puts in every VMM command line for this machine
// (QEMU's -name, Firecracker's --id) and checks when it re-adopts a process.
func (s Spec) Marker() string { return "ferry-" + s.ID }
