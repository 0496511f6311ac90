package types

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Config is a machine's desired configuration, shaped like Fly's Machines
// API machine config (image, env, init, guest, services, mounts, restart,
// auto_destroy, metadata) plus a few ferry fields (hostname, vmm, dns).
type Config struct {
	Image       string            `json:"image"`
	Env         map[string]string `json:"env,omitempty"`
	Init        Init              `json:"init,omitempty"`
	Guest       Guest             `json:"guest,omitempty"`
	Services    []Service         `json:"services,omitempty"`
	Mounts      []Mount           `json:"mounts,omitempty"`
	Restart     Restart           `json:"restart,omitempty"`
	AutoDestroy bool              `json:"auto_destroy,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`

	Hostname string   `json:"hostname,omitempty"`
	VMM      string   `json:"vmm,omitempty"` // "", "qemu" or "firecracker"
	DNS      []string `json:"dns,omitempty"` // nameservers; empty: the daemon's default

	// Networks are the machine's networks in NIC order (Docker's --network,
	// --network-alias, --ip); none: its app's default network.
	Networks []EndpointRequest `json:"networks,omitempty"`
	// ExtraHosts are extra /etc/hosts entries, Docker's --add-host NAME:IP.
	ExtraHosts []string `json:"extra_hosts,omitempty"`
	// Healthcheck overrides the image's HEALTHCHECK (test ["NONE"] turns it off).
	Healthcheck *Healthcheck `json:"healthcheck,omitempty"`
}

// EndpointRequest asks for a machine's place on one network.
type EndpointRequest struct {
	Network string     `json:"network"` // name or ID
	Aliases []string   `json:"aliases,omitempty"`
	IPv4    netip.Addr `json:"ipv4,omitzero"` // --ip; zero: allocate
	IPv6    netip.Addr `json:"ipv6,omitzero"` // --ip6; zero: derived from the IPv4 address
}

// Init overrides the image's process (Fly's init section, with Docker's
// --user and --workdir added).
type Init struct {
	Exec       []string `json:"exec,omitempty"`       // whole argv, replaces entrypoint+cmd
	Entrypoint []string `json:"entrypoint,omitempty"` // replaces the image entrypoint (and drops its cmd)
	Cmd        []string `json:"cmd,omitempty"`        // replaces the image cmd
	TTY        bool     `json:"tty,omitempty"`
	// Attach makes the guest wait (up to 60 s per start) for a client to
	// attach to the entrypoint's stdio (Manager.Exec with Entrypoint set:
	// ferry run -i/-it) before starting it; with none it starts unattached.
	Attach     bool   `json:"attach,omitempty"`
	User       string `json:"user,omitempty"`
	WorkingDir string `json:"working_dir,omitempty"`
	// CgroupVersion is the guest's cgroup layout: "v2" (the default),
	// "hybrid" or "v1", for images that expect the v1 hierarchies.
	CgroupVersion string `json:"cgroup_version,omitempty"`
}

// Guest sizes the VM.
type Guest struct {
	CPUs     int `json:"cpus,omitempty"`      // default 1
	MemoryMB int `json:"memory_mb,omitempty"` // default 256
	// Cold boots the machine even when the daemon restores machines from
	// warm-start templates (`ferry run --cold`; docs/warm-starts.md).
	Cold bool `json:"cold,omitempty"`
}

// Service publishes a guest port on the host (Docker's -p).
type Service struct {
	Protocol     string `json:"protocol,omitempty"` // tcp (default) or udp
	InternalPort int    `json:"internal_port"`
	Ports        []Port `json:"ports,omitempty"` // host ports; none or port 0: a random free port
}

// Port is one host side of a service.
type Port struct {
	Port   int    `json:"port,omitempty"`
	HostIP string `json:"host_ip,omitempty"`
}

// Mount is an extra filesystem in the guest: a named volume (Fly's
// mounts, Docker's -v NAME:/path), a host directory (Docker's bind mounts)
// or a tmpfs. Type "" is inferred: volume when Volume is set, bind when
// Source is, else tmpfs.
type Mount struct {
	Type string `json:"type,omitempty"` // MountVolume, MountBind or MountTmpfs
	Path string `json:"path"`           // absolute path in the guest
	// Volume is the volume's name or ID in the machine's app. A name that
	// does not exist yet is created on first use (Docker's -v NAME:/path),
	// with SizeMB and Encrypted; "" is an anonymous volume, made for this
	// machine and removed with it when it is removed with its volumes
	// (rm -v, --rm). The machine's recorded config names it.
	Volume string `json:"volume,omitempty"`
	// Source is a bind mount's host directory (absolute; it must exist).
	Source   string `json:"source,omitempty"`
	ReadOnly bool   `json:"read_only,omitempty"`
	// SizeMB is a tmpfs's size, or the size of a volume created on first
	// use (default 1 GiB).
	SizeMB int `json:"size_mb,omitempty"`
	// Encrypted is whether a volume created on first use is LUKS2-encrypted
	// (nil: yes).
	Encrypted *bool `json:"encrypted,omitempty"`
}

// Mount types.
const (
	MountVolume = "volume"
	MountBind   = "bind"
	MountTmpfs  = "tmpfs"
)

// Kind is m's type, inferred when Type is empty.
func (m Mount) Kind() string {
	switch {
	case m.Type != "":
		return m.Type
	case m.Volume != "":
		return MountVolume
	case m.Source != "":
		return MountBind
	}
	return MountTmpfs
}

// Restart policies (Docker's and Fly's).
const (
	RestartNo        = "no"
	RestartAlways    = "always"
	RestartOnFailure = "on-failure"
)

// Restart is a machine's restart policy.
type Restart struct {
	Policy     string `json:"policy,omitempty"`      // no (default), always, on-failure
	MaxRetries int    `json:"max_retries,omitempty"` // on-failure only; 0: unlimited
}

// ParseRestart parses Docker's --restart syntax: no, always,
// unless-stopped (treated as always), on-failure[:N].
func ParseRestart(s string) (Restart, error) {
	pol, n, hasN := strings.Cut(s, ":")
	r := Restart{Policy: pol}
	switch pol {
	case "", RestartNo, RestartAlways, RestartOnFailure:
	case "unless-stopped":
		r.Policy = RestartAlways
	default:
		return r, fmt.Errorf("restart policy %q: want no, always or on-failure[:max-retries]: %w", s, errdefs.ErrInvalidArgument)
	}
	if hasN {
		v, err := strconv.Atoi(n)
		if pol != RestartOnFailure || err != nil || v < 0 {
			return r, fmt.Errorf("restart policy %q: only on-failure takes a non-negative retry count: %w", s, errdefs.ErrInvalidArgument)
		}
		r.MaxRetries = v
	}
	return r, nil
}

func (r Restart) String() string {
	switch {
	case r.Policy == "":
		return RestartNo
	case r.Policy == RestartOnFailure && r.MaxRetries > 0:
		return fmt.Sprintf("%s:%d", r.Policy, r.MaxRetries)
	}
	return r.Policy
}

// CreateRequest is POST /v1/apps/{app}/machines.
type CreateRequest struct {
	// ID is the machine's ID when the caller chooses it (the control
	// plane does, so a machine keeps one ID on whichever host runs it):
	// 14 lowercase hex digits, unused on this host. Empty: a new one.
	ID         string `json:"id,omitempty"`
	Name       string `json:"name,omitempty"`
	Config     Config `json:"config"`
	SkipLaunch bool   `json:"skip_launch,omitempty"` // create only; start later
}
