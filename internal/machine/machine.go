package machine

import (
	"time"

	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/network"
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

// ParseState checks s names a state (as /wait?state= takes it). "running" is
// accepted as started, "exited" as stopped.
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

// Machine is a machine as stored and as the API returns it.
type Machine struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	App      string   `json:"app"`
	State    State    `json:"state"`
	Config   Config   `json:"config"`
	Version  int      `json:"version"` // config version, 1 on create, +1 per update
	ImageRef ImageRef `json:"image_ref"`
	// ImageConfig is the image's runtime config, kept so a start needs no
	// image lookup.
	ImageConfig guest.Image `json:"image_config"`
	CreatedAt   time.Time   `json:"created_at"`
	UpdatedAt   time.Time   `json:"updated_at"`

	// Running instance (zero when not started).
	PID       int                 `json:"pid,omitempty"`
	StartedAt time.Time           `json:"started_at,omitzero"`
	Network   *network.Attachment `json:"network,omitempty"`
	Emulated  bool                `json:"emulated,omitempty"` // the VMM runs under TCG
	Driver    string              `json:"driver,omitempty"`   // the VMM driver of the current/last run

	// Restarts counts restarts by policy since the last explicit start.
	Restarts int `json:"restarts"`
	// StopRequested is set while a requested stop is in flight, so that an
	// exit observed after a crash is known to be requested.
	StopRequested bool `json:"stop_requested,omitempty"`
	// LastExit is the entrypoint's last exit.
	LastExit *Exit `json:"last_exit,omitempty"`
	// Error says why the machine failed (state failed) or why the last
	// operation did.
	Error string `json:"error,omitempty"`

	Events []Event `json:"events,omitempty"` // newest first, at most maxEvents
}

// ImageRef is the image a machine was created from.
type ImageRef struct {
	Ref    string `json:"ref"`
	Digest string `json:"digest,omitempty"` // manifest digest
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

// Failed reports whether the exit counts as a failure for on-failure.
func (e *Exit) Failed() bool { return e.ExitCode != 0 || e.Signal != 0 || e.OOMKilled || e.Unknown }

// Event is one entry of a machine's history and of /v1/events.
type Event struct {
	Type      string    `json:"type"` // create, start, exit, stop, restart, update, destroy, fail, rename
	MachineID string    `json:"machine_id"`
	App       string    `json:"app"`
	State     State     `json:"state"`
	Status    string    `json:"status,omitempty"` // free text
	Exit      *Exit     `json:"exit,omitempty"`
	Time      time.Time `json:"time"`
}

const maxEvents = 20

// clone returns a copy that shares nothing mutable with m.
func (m *Machine) clone() *Machine {
	out := *m
	out.Config = m.Config.clone()
	out.Network = m.Network.Clone()
	if m.LastExit != nil {
		e := *m.LastExit
		out.LastExit = &e
	}
	out.Events = cloneSlice(m.Events)
	return &out
}

// IP returns the machine's first address without its prefix, or "".
func (m *Machine) IP() string {
	if ip := m.Network.IP(); ip.IsValid() {
		return ip.String()
	}
	return ""
}
