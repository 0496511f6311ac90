package guest

import (
	"errors"
	"fmt"
)

// Machine states reported by Status.
const (
	StateBooting = "booting" // init is setting up; entrypoint not started
	StateRunning = "running" // entrypoint running
	StateExited  = "exited"  // entrypoint exited; Exit is set
	StateFailed  = "failed"  // init could not start the entrypoint; Exit.Failure is set
)

// Failure reasons: one per kind of bad input, so the host can tell them
// apart without parsing messages.
const (
	ReasonConfig         = "config_invalid"            // run config missing or malformed
	ReasonNotFound       = "entrypoint_not_found"      // exit code 127
	ReasonNotExecutable  = "entrypoint_not_executable" // exit code 126
	ReasonUser           = "user_unknown"
	ReasonWorkdir        = "workdir_invalid"
	ReasonRootDevice     = "root_device_missing"
	ReasonScratchCorrupt = "scratch_corrupt"
	ReasonMount          = "mount_failed"
	ReasonNetwork        = "network_failed"
	ReasonNotBooted      = "not_booted"  // an exec before the entrypoint started: ask again
	ReasonInit           = "init_failed" // anything else
)

// Failure says why init could not run the entrypoint.
type Failure struct {
	Reason  string `json:"reason"`
	Step    string `json:"step,omitempty"`
	Message string `json:"message"`
}

func (f *Failure) Error() string { return fmt.Sprintf("%s (%s): %s", f.Reason, f.Step, f.Message) }

// ExitStatus is how the entrypoint (or an exec'd process) ended.
type ExitStatus struct {
	// Code is the exit code, or 128+signal when killed by a signal (the
	// shell's and Docker's convention). Failures use 126/127 for
	// not-executable/not-found and 125 for the rest.
	Code      int      `json:"code"`
	Signal    int      `json:"signal,omitempty"`
	OOMKilled bool     `json:"oom_killed,omitempty"`
	Failure   *Failure `json:"failure,omitempty"`
}

// Status is init's view of the machine.
type Status struct {
	State    string      `json:"state"`
	PID      int         `json:"pid,omitempty"` // entrypoint pid in the guest
	Exit     *ExitStatus `json:"exit,omitempty"`
	Protocol int         `json:"protocol"`
	// InitMS is init's own boot time: from its start to the entrypoint exec.
	InitMS float64 `json:"init_ms,omitempty"`
}

// ExecRequest runs a process beside the entrypoint (docker exec).
type ExecRequest struct {
	Argv       []string `json:"argv"`
	Env        []string `json:"env,omitempty"`  // added to the entrypoint's environment
	User       string   `json:"user,omitempty"` // default: the entrypoint's user
	WorkingDir string   `json:"working_dir,omitempty"`
	TTY        bool     `json:"tty,omitempty"`
	Rows       uint16   `json:"rows,omitempty"`
	Cols       uint16   `json:"cols,omitempty"`
	// Stdin says the client sends stdin; otherwise it is /dev/null.
	Stdin bool `json:"stdin,omitempty"`
	// Entrypoint attaches to the entrypoint of a run config with Attach:
	// init starts the entrypoint (its argv, env, user and working dir come
	// from the run config; Argv, Env, User and WorkingDir must be empty)
	// with this stream's stdio. Its exit is the machine's exit; the host
	// going away detaches without killing it. Only the first such request
	// is served.
	Entrypoint bool `json:"entrypoint,omitempty"`
}

// Validate checks r's shape (not whether the command exists).
func (r *ExecRequest) Validate() error {
	if r.Entrypoint {
		if len(r.Argv) > 0 || len(r.Env) > 0 || r.User != "" || r.WorkingDir != "" {
			return errors.New("exec: an entrypoint attach takes no argv, env, user or working dir")
		}
		return nil
	}
	if len(r.Argv) == 0 {
		return errors.New("exec: empty argv")
	}
	return nil
}

type request struct {
	Op     string       `json:"op"` // status, wait, ack, signal, exec, warm, warm-part
	Signal int          `json:"signal,omitempty"`
	Exec   *ExecRequest `json:"exec,omitempty"`
	Warm   *WarmConfig  `json:"warm,omitempty"`
	// Part is a piece of a warm config's run config too large for one
	// frame (warm-part); the warm request that follows has no Config.
	Part []byte `json:"part,omitempty"`
}

type reply struct {
	Error  *RemoteError `json:"error,omitempty"`
	Status *Status      `json:"status,omitempty"`
	Exit   *ExitStatus  `json:"exit,omitempty"`
	PID    int          `json:"pid,omitempty"`
}

type control struct {
	Rows   uint16 `json:"rows,omitempty"`
	Cols   uint16 `json:"cols,omitempty"`
	Signal int    `json:"signal,omitempty"`
}

// RemoteError is an error reported by init. Reason is one of the Reason
// constants when it is a failure of a kind the host should tell apart.
type RemoteError struct {
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message"`
}

func (e *RemoteError) Error() string {
	if e.Reason != "" {
		return "guest: " + e.Reason + ": " + e.Message
	}
	return "guest: " + e.Message
}
