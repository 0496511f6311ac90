package types

import (
	"net/netip"
	"time"
)

// State is where a machine is in its lifecycle.
type State string

// The states. A machine is recorded in the state it is entering before the
// work of that state is done, so "starting" after a crash means "the start
// may be half done".
const (
	StateCreated    State = "created"
	StateStarting   State = "starting"
	StateStarted    State = "started"
	StateStopping   State = "stopping"
	StateStopped    State = "stopped"
	StateDestroying State = "destroying"
	StateDestroyed  State = "destroyed"
	StateFailed     State = "failed"
)

// WaitBooted is what /wait?state= takes, beside the states, to wait until a
// started machine's init takes exec requests (it has started the
// entrypoint). No machine is ever in it.
const WaitBooted State = "booted"

// ParseWait checks s names what /wait?state= waits for: a state
// (ParseState) or WaitBooted.
func ParseWait(s string) (State, bool) {
	if State(s) == WaitBooted {
		return WaitBooted, true
	}
	return ParseState(s)
}

// ParseState checks s names a state. "running" is accepted as started,
// "exited" as stopped.
func ParseState(s string) (State, bool) {
	switch State(s) {
	case StateCreated, StateStarting, StateStarted, StateStopping, StateStopped, StateDestroying, StateDestroyed, StateFailed:
		return State(s), true
	case "running":
		return StateStarted, true
	case "exited":
		return StateStopped, true
	}
	return "", false
}

// Machine is a machine as the API returns it.
type Machine struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	App  string `json:"app"`
	// Host is the host that runs the machine, set by the control plane
	// (`ferry -H tcp://CONTROLPLANE ps`); empty from a host's own API.
	Host     string   `json:"host,omitempty"`
	State    State    `json:"state"`
	Config   Config   `json:"config"`
	Version  int      `json:"version"` // config version, 1 on create, +1 per update
	ImageRef ImageRef `json:"image_ref"`
	// ImageConfig is the image's runtime config the machine runs with.
	ImageConfig ImageConfig `json:"image_config"`
	CreatedAt   time.Time   `json:"created_at"`
	UpdatedAt   time.Time   `json:"updated_at"`

	// Running instance (zero when not started).
	PID       int       `json:"pid,omitempty"`
	StartedAt time.Time `json:"started_at,omitzero"`
	Network   *Network  `json:"network,omitempty"`
	Emulated  bool      `json:"emulated,omitempty"` // the VMM runs under TCG
	Driver    string    `json:"driver,omitempty"`   // the VMM driver of the current/last run
	// Warm says the current/last run was restored from a warm-start
	// template instead of booted (docs/warm-starts.md).
	Warm bool `json:"warm,omitempty"`
	// Health is the started machine's health, when it has a health check.
	Health *Health `json:"health,omitempty"`

	// Restarts counts restarts by policy since the last explicit start.
	Restarts int `json:"restarts"`
	// StopRequested is set while a requested stop is in flight.
	StopRequested bool `json:"stop_requested,omitempty"`
	// LastExit is the entrypoint's last exit.
	LastExit *Exit `json:"last_exit,omitempty"`
	// Error says why the machine failed (state failed) or why the last
	// operation did.
	Error string `json:"error,omitempty"`

	Events []Event `json:"events,omitempty"` // newest first, at most 20
}

// IP returns the machine's primary IPv4 address, or "".
func (m *Machine) IP() string {
	if m.Network == nil || len(m.Network.Endpoints) == 0 || !m.Network.Endpoints[0].IPv4.IsValid() {
		return ""
	}
	return m.Network.Endpoints[0].IPv4.Addr().String()
}

// ImageRef is the image a machine was created from.
type ImageRef struct {
	Ref    string `json:"ref"`
	Digest string `json:"digest,omitempty"` // manifest digest
}

// ImageConfig is the part of an image's config a machine runs.
type ImageConfig struct {
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	Env        []string `json:"env,omitempty"`
	User       string   `json:"user,omitempty"`
	WorkingDir string   `json:"working_dir,omitempty"`
	// Healthcheck is the image's HEALTHCHECK.
	Healthcheck *Healthcheck `json:"healthcheck,omitempty"`
}

// Network is a started machine's network: its NICs in guest order (eth0
// first: default routes and published ports), the ports published to it and
// the guest's resolver.
type Network struct {
	Endpoints []Endpoint    `json:"endpoints"`
	Ports     []PortMapping `json:"ports,omitempty"`
	DNS       []string      `json:"dns,omitempty"`
	Search    []string      `json:"search,omitempty"`
	NetNS     string        `json:"netns,omitempty"` // the daemon's --netns the TAPs live in
}

// Endpoint is a machine's NIC on one network.
type Endpoint struct {
	NetworkID string       `json:"network_id"`
	Network   string       `json:"network"` // name
	Name      string       `json:"name"`    // the machine's DNS name there
	App       string       `json:"app,omitempty"`
	Aliases   []string     `json:"aliases,omitempty"`
	Tap       string       `json:"tap"`
	MAC       string       `json:"mac"`
	IPv4      netip.Prefix `json:"ipv4"` // address with the subnet's length
	Gateway   netip.Addr   `json:"gateway,omitzero"`
	IPv6      netip.Prefix `json:"ipv6,omitzero"`
	Gateway6  netip.Addr   `json:"gateway6,omitzero"`
	MTU       int          `json:"mtu,omitempty"`
	Requested netip.Addr   `json:"requested,omitzero"` // the address asked for (--ip)
}

// PortMapping is one published port.
type PortMapping struct {
	Protocol  string `json:"protocol"`          // tcp or udp
	HostIP    string `json:"host_ip,omitempty"` // "": every host address
	HostPort  int    `json:"host_port"`
	GuestPort int    `json:"guest_port"`
}

// Exit is how an entrypoint ended.
type Exit struct {
	ExitCode      int       `json:"exit_code"`
	Signal        int       `json:"signal,omitempty"`
	OOMKilled     bool      `json:"oom_killed,omitempty"`
	RequestedStop bool      `json:"requested_stop,omitempty"`
	ExitedAt      time.Time `json:"exited_at"`
	// Unknown is set when the VMM ended without the guest reporting an exit
	// status (crash, kill); ExitCode is then 255.
	Unknown bool `json:"unknown,omitempty"`
}

// Event is one entry of a machine's history and of /v1/events.
type Event struct {
	Type      string    `json:"type"` // create, start, exit, stop, restart, update, destroy, fail, rename, adopt, guest_violation
	MachineID string    `json:"machine_id"`
	App       string    `json:"app"`
	State     State     `json:"state"`
	Status    string    `json:"status,omitempty"` // free text
	Exit      *Exit     `json:"exit,omitempty"`
	Time      time.Time `json:"time"`
}

// Stats is the host-side resource use of a machine's VMM process.
type Stats struct {
	ID         string  `json:"id"`
	Name       string  `json:"name"`
	PID        int     `json:"pid"`
	CPUPercent float64 `json:"cpu_percent"` // over the sampling interval, 100 = one core
	CPUSeconds float64 `json:"cpu_seconds"` // user+system since the VMM started
	MemoryRSS  int64   `json:"memory_rss_bytes"`
	MemoryMB   int     `json:"memory_limit_mb"` // the guest's memory size
}
