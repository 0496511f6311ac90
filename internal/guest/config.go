package guest

import (
	"encoding/json"
	"fmt"
)

// ConfigVersion is the run-config schema version this code writes and
// accepts. Bump it on any incompatible change; init refuses other versions.
const ConfigVersion = 1

// ConfigPath is where the run config lives inside the initramfs (the
// per-machine cpio holds exactly this file).
const ConfigPath = "/ferry/run.json"

// ModulesOrderPath, when present in the initramfs, lists kernel modules (one
// path per line, absolute or relative to /lib/modules/) that init loads with
// finit_module, in order, before it looks for the root device. Used with the
// distro fallback kernel; the built kernel has everything built in.
const ModulesOrderPath = "/lib/modules/ferry.order"

// MaxConfigSize bounds the run config file (it is a few KB in practice).
const MaxConfigSize = 1 << 20

// RunConfig is everything init needs to turn a raw root filesystem into a
// running container: the image's config, the overrides of this run, and the
// machine's network, DNS, disks and mounts.
type RunConfig struct {
	Version  int      `json:"version"`
	ID       string   `json:"id,omitempty"`       // machine id, for log lines only
	Image    Image    `json:"image"`              // from the image config
	Override Override `json:"override,omitempty"` // from this run (docker run flags / Machines API init{})
	TTY      bool     `json:"tty,omitempty"`      // entrypoint gets a terminal (the console, or an attached host's pty)

	// Attach makes init wait for a host to attach to the entrypoint (an
	// exec request with Entrypoint set) and start it with that stream's
	// stdio: a pty when TTY, else pipes (ferry run -it / -i). Without a
	// host within AttachTimeoutMS (default 60000) init starts it
	// unattached, as without Attach.
	Attach          bool `json:"attach,omitempty"`
	AttachTimeoutMS int  `json:"attach_timeout_ms,omitempty"`

	// ConsoleRecords, when not 0, is the highest console record version
	// (records.go) the host reads: without a TTY, init then writes the
	// entrypoint's stdout and stderr to the console as records that keep
	// each line's stream. 0: both straight to the console, untagged.
	ConsoleRecords int `json:"console_records,omitempty"`

	Hostname string      `json:"hostname,omitempty"`
	Hosts    []HostEntry `json:"hosts,omitempty"` // extra /etc/hosts lines
	DNS      *DNS        `json:"dns,omitempty"`   // nil: keep the image's /etc/resolv.conf
	Network  []Interface `json:"network,omitempty"`

	Root    Root     `json:"root"`
	Mounts  []Mount  `json:"mounts,omitempty"`
	Rlimits *Rlimits `json:"rlimits,omitempty"`

	// CgroupVersion is the cgroup layout under /sys/fs/cgroup: CgroupV2
	// (the default when empty), CgroupHybrid or CgroupV1, for images whose
	// software expects the v1 hierarchies (older JVMs, systemd, cgroup-v1
	// tooling).
	CgroupVersion string `json:"cgroup_version,omitempty"`

	// Power says how init ends the VM. Empty method = "reboot": QEMU
	// microvm with acpi=off and Firecracker both exit on a guest reboot
	// (reboot=t / reboot=k on the kernel cmdline, QEMU with -no-reboot).
	Power Power `json:"power,omitempty"`

	// Debug makes init log every step to the kernel log.
	Debug bool `json:"debug,omitempty"`
}

// Image is the runtime part of an OCI image config.
type Image struct {
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	Env        []string `json:"env,omitempty"` // KEY=value
	User       string   `json:"user,omitempty"`
	WorkingDir string   `json:"working_dir,omitempty"`
}

// Override is what a run changes, with Docker's semantics (see Argv).
type Override struct {
	// Exec replaces the whole argv (Fly's init.exec).
	Exec []string `json:"exec,omitempty"`
	// Entrypoint, when non-nil, replaces the image entrypoint and drops the
	// image Cmd (docker run --entrypoint); an empty slice clears it.
	Entrypoint *[]string `json:"entrypoint,omitempty"`
	// Cmd, when non-nil, replaces the image Cmd (docker run IMAGE ARGS...).
	Cmd *[]string `json:"cmd,omitempty"`
	// Env is appended to the image Env; later KEY wins.
	Env        []string `json:"env,omitempty"`
	User       string   `json:"user,omitempty"`
	WorkingDir string   `json:"working_dir,omitempty"`
}

// HostEntry is one /etc/hosts line.
type HostEntry struct {
	IP    string   `json:"ip"`
	Names []string `json:"names"`
}

// DNS is the content of /etc/resolv.conf.
type DNS struct {
	Nameservers []string `json:"nameservers,omitempty"`
	Search      []string `json:"search,omitempty"`
	Options     []string `json:"options,omitempty"`
}

// Interface configures one guest NIC, found by MAC (preferred) or by name.
type Interface struct {
	Name      string   `json:"name,omitempty"` // e.g. eth0; renamed to this if found by MAC
	MAC       string   `json:"mac,omitempty"`
	Addresses []string `json:"addresses,omitempty"` // CIDRs, IPv4 and IPv6
	Gateway4  string   `json:"gateway4,omitempty"`
	Gateway6  string   `json:"gateway6,omitempty"`
	MTU       int      `json:"mtu,omitempty"`
}

// Root modes.
const (
	RootOverlay = "overlay" // read-only base + writable scratch, overlayfs on top
	RootSingle  = "single"  // one writable device is the root
)

// The overlay's directories on a scratch disk: init makes them on the
// first boot; the host reads a stopped machine's files through them
// (rootfs View).
const (
	ScratchUpper = "upper"
	ScratchWork  = "work"
)

// Root describes how init assembles the root filesystem.
type Root struct {
	Mode string `json:"mode"`
	// Device is the base (overlay) or the root (single), e.g. /dev/vda.
	Device string `json:"device"`
	FSType string `json:"fstype,omitempty"` // default ext4
	// Scratch is the writable upper device in overlay mode, e.g. /dev/vdb,
	// formatted ext4 by the host. Empty: a tmpfs upper (nothing persists).
	Scratch       string `json:"scratch,omitempty"`
	ScratchFSType string `json:"scratch_fstype,omitempty"` // default ext4
	// WaitMS bounds how long init waits for the devices to appear
	// (default 2000).
	WaitMS int `json:"wait_ms,omitempty"`
}

// Mount is an extra volume mounted into the root before the entrypoint runs.
type Mount struct {
	// Source is a device (/dev/vdc), a virtio-fs tag (FSType virtiofs) or,
	// for tmpfs, "tmpfs".
	Source   string   `json:"source"`
	Target   string   `json:"target"` // absolute path in the container
	FSType   string   `json:"fstype,omitempty"`
	Options  []string `json:"options,omitempty"` // fs data options, e.g. size=64m
	ReadOnly bool     `json:"read_only,omitempty"`

	// Name is what init calls the mount in its messages (a volume's name).
	Name string `json:"name,omitempty"`
	// Encryption says the device holds a LUKS2 container that init opens
	// with dm-crypt; the filesystem is inside it.
	Encryption *Encryption `json:"encryption,omitempty"`
	// Format lets init make an ext4 filesystem (mkext4) on a device, or in
	// a LUKS2 container, that is still blank (all zeros): a new volume.
	// Anything else that is not ext4 is refused, and nothing is written.
	Format bool `json:"format,omitempty"`
	// Grow makes init grow the filesystem online to fill the device when
	// the device is larger (a volume extended since its last mount).
	Grow bool `json:"grow,omitempty"`
}

// Encryption is how a volume's device is encrypted.
type Encryption struct {
	Type string `json:"type"` // EncryptionLUKS2
	// Key is the LUKS2 passphrase (base64): the volume's own random key,
	// which one of the header's keyslots accepts.
	Key string `json:"key"`
}

// EncryptionLUKS2 is a LUKS2 container opened with dm-crypt in the guest.
const EncryptionLUKS2 = "luks2"

// FSTypeVirtioFS is a host directory shared over virtio-fs; Source is its tag.
const FSTypeVirtioFS = "virtiofs"

// Rlimits sets resource limits for the entrypoint and exec'd processes.
type Rlimits struct {
	NoFile uint64 `json:"nofile,omitempty"`
}

// Cgroup layouts (RunConfig.CgroupVersion).
const (
	// CgroupV2 is the unified hierarchy alone: cgroup2 on /sys/fs/cgroup.
	CgroupV2 = "v2"
	// CgroupHybrid is systemd's hybrid layout: a tmpfs on /sys/fs/cgroup
	// with every v1 controller mounted below it, a named systemd
	// hierarchy, and cgroup2 (without controllers) on /sys/fs/cgroup/unified.
	CgroupHybrid = "hybrid"
	// CgroupV1 is the legacy layout: the hybrid one without cgroup2.
	CgroupV1 = "v1"
)

// Power methods.
const (
	PowerReboot   = "reboot"
	PowerPoweroff = "poweroff"
	PowerHalt     = "halt"
)

// Power says how the VM ends.
type Power struct {
	Method string `json:"method,omitempty"`
	// ExitGraceMS is how long init keeps the VM up after the entrypoint
	// exits so that a connected host can collect the exit status (default
	// 1000). Init powers off as soon as a host acknowledges it.
	ExitGraceMS int `json:"exit_grace_ms,omitempty"`
	// StopGraceMS is how long the remaining processes get between SIGTERM
	// and SIGKILL at shutdown (default 500).
	StopGraceMS int `json:"stop_grace_ms,omitempty"`
}

// ParseConfig decodes and validates a run config. Unknown fields are
// errors, so a host newer than the init fails loudly instead of silently.
// It decodes without reflection (decodeConfig): it is the first thing
// ferry-init does, on the boot's critical path.
func ParseConfig(data []byte) (*RunConfig, error) {
	if len(data) > MaxConfigSize {
		return nil, fmt.Errorf("run config: %d bytes exceeds %d: %w", len(data), MaxConfigSize, ErrInvalidConfig)
	}
	var c RunConfig
	if err := decodeConfig(data, &c); err != nil {
		return nil, fmt.Errorf("run config: %w: %w", err, ErrInvalidConfig)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Marshal validates c and encodes it as the file init reads.
func (c *RunConfig) Marshal() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return json.MarshalIndent(c, "", "  ")
}
