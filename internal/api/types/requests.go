package types

import (
	"time"
	"unicode/utf8"
)

// UpdateRequest is POST /v1/apps/{app}/machines/{id}.
type UpdateRequest struct {
	Config Config `json:"config"`
}

// StopRequest is the body of stop and restart. Signal is a name (SIGTERM,
// TERM) or number; Timeout is a Go duration ("10s") or seconds.
type StopRequest struct {
	Signal  string `json:"signal,omitempty"`
	Timeout string `json:"timeout,omitempty"`
}

// SignalRequest is the body of signal.
type SignalRequest struct {
	Signal string `json:"signal"`
}

// RenameRequest is the body of rename.
type RenameRequest struct {
	Name string `json:"name"`
}

// ExecRequest is a process to run in a machine (POST …/exec).
type ExecRequest struct {
	Cmd        []string `json:"cmd"`
	Env        []string `json:"env,omitempty"`
	User       string   `json:"user,omitempty"`
	WorkingDir string   `json:"working_dir,omitempty"`
	TTY        bool     `json:"tty,omitempty"`
	Stdin      bool     `json:"stdin,omitempty"`
	Rows       int      `json:"rows,omitempty"`
	Cols       int      `json:"cols,omitempty"`
	// Entrypoint attaches to the entrypoint of a machine created with
	// Init.Attach instead of running Cmd (which must be empty, as must
	// Env, User and WorkingDir): the entrypoint starts with this stdio
	// and the exit code is the machine's. TTY must match Init.TTY.
	Entrypoint bool `json:"entrypoint,omitempty"`
}

// WindowSize is a terminal size (the resize frame of an exec stream).
type WindowSize struct {
	Rows int `json:"rows"`
	Cols int `json:"cols"`
}

// ExecResult is the reply of a non-streaming exec (Fly's shape).
type ExecResult struct {
	ExitCode int    `json:"exit_code"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
}

// LogLine is one value of an NDJSON log stream: a line (or a piece of
// one) as the machine's entrypoint wrote it.
type LogLine struct {
	Data string `json:"data"`
	// Bytes holds the data instead when it is not valid UTF-8 (a JSON
	// string cannot carry it unchanged): base64, Data then empty.
	Bytes  []byte    `json:"bytes,omitempty"`
	Stream string    `json:"stream,omitempty"` // stdout or stderr
	Time   time.Time `json:"time,omitzero"`    // when the machine's log stored it
}

// NewLogLine is data as a LogLine, in Bytes when it is not UTF-8.
func NewLogLine(data []byte, stream string, t time.Time) LogLine {
	l := LogLine{Stream: stream, Time: t}
	if utf8.Valid(data) {
		l.Data = string(data)
	} else {
		l.Bytes = data
	}
	return l
}

// Raw is the line's data as the machine wrote it.
func (l LogLine) Raw() []byte {
	if l.Bytes != nil {
		return l.Bytes
	}
	return []byte(l.Data)
}
