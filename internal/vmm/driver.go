package vmm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Driver turns a Spec into a running VMM.
type Driver interface {
	// Name is "qemu" or "firecracker".
	Name() string
	// Available says why this driver cannot run machines on this host
	// (binary missing, no usable /dev/kvm), or nil.
	Available() error
	// Plan returns what Start would run, without side effects.
	Plan(spec Spec) (*Plan, error)
	// Start runs the VMM for spec in its own session and writes its pid file.
	// The VMM is not tied to ctx: it outlives the caller.
	Start(ctx context.Context, spec Spec) (*Process, error)
	// DialControl connects to the guest's control channel.
	DialControl(ctx context.Context, spec Spec) (net.Conn, error)
}

// Plan is what a driver will run for a Spec: a value to print, compare
// in golden tests and store, then execute with Run.
type Plan struct {
	Driver string   `json:"driver"`
	Path   string   `json:"path"` // executable
	Args   []string `json:"args"` // argv, Args[0] included
	Env    []string `json:"env,omitempty"`
	Dir    string   `json:"dir,omitempty"`

	// Files are written (0600, parents created) before the VMM starts.
	Files []File `json:"files,omitempty"`
	// Links are hard links (or copies across filesystems) made before the
	// VMM starts, e.g. a jailer's chroot.
	Links []Link `json:"links,omitempty"`
	// Extra are descriptors the VMM inherits as fd 3, 4, ... in order.
	Extra []ExtraFile `json:"extra_files,omitempty"`
	// Helpers are started, in order, before the VMM (virtiofsd per share).
	Helpers []Helper `json:"helpers,omitempty"`

	// Console, when set, is the guest console as the VMM writes it: into a
	// pipe read by a console writer that keeps the log under its cap
	// whether or not a daemon is up (see ConsoleLog).
	Console *ConsoleLog `json:"console,omitempty"`
	// Sandbox, when set, confines the VMM: its own uid, no groups, a
	// cgroup sized to the machine.
	Sandbox *Sandbox `json:"sandbox,omitempty"`

	// Stdout and Stderr are opened O_APPEND|O_CREATE for the VMM.
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`

	// PIDFile is written once the VMM runs; Marker is what Adopt looks for in
	// the process's command line.
	PIDFile string `json:"pid_file"`
	Marker  string `json:"marker"`

	// Accel is "kvm" or "tcg"; Emulated is true under TCG (the CLI says so
	// once: guests are much slower).
	Accel    string `json:"accel,omitempty"`
	Emulated bool   `json:"emulated,omitempty"`
}

// File is a file written before the VMM starts.
type File struct {
	Path    string      `json:"path"`
	Content string      `json:"content"`
	Mode    os.FileMode `json:"mode"`
	Owner   *Owner      `json:"owner,omitempty"`
}

// Link makes Target a hard link to (or copy of) Source. With Owner set the
// target is then chowned (only for per-machine files: a hard link shares
// its inode with the source).
type Link struct {
	Source string `json:"source"`
	Target string `json:"target"`
	Owner  *Owner `json:"owner,omitempty"`
}

// Owner is a uid and gid.
type Owner struct {
	UID int `json:"uid"`
	GID int `json:"gid"`
}

// ExtraFile is an inherited descriptor. FD is what the VMM sees it as.
// It is File when that is set (an open TAP); otherwise Run opens it: Path
// read-only or, with Write, read-write; with Listen a unix socket Run
// creates at Path and listens on (the VMM accepts on it); with Dial a
// connection to the unix socket at Path (a helper's: the VMM talks to it
// without reaching the path); with Console the
// write end of the console pipe (Plan.Console). A VMM that gets every file
// this way needs no access to any path, so it can run as a uid that owns
// nothing.
//
// With Tap set, File is an open TAP the VMM opens again by name: under a
// sandbox Run makes the VMM's uid its owner (TUNSETOWNER) first.
type ExtraFile struct {
	FD      int      `json:"fd"`
	Name    string   `json:"name"`
	Path    string   `json:"path,omitempty"`
	Write   bool     `json:"write,omitempty"`
	Listen  bool     `json:"listen,omitempty"`
	Dial    bool     `json:"dial,omitempty"`
	Console bool     `json:"console,omitempty"`
	Tap     bool     `json:"tap,omitempty"`
	File    *os.File `json:"-"`
}

// Command returns the plan's argv as one shell-quoted line (for logs and
// the CLI's --dry-run).
func (p *Plan) Command() string {
	q := make([]string, len(p.Args))
	for i, a := range p.Args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		safe := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=,:@%+", r)
		return !safe
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Select picks a driver by name from candidates: "" picks the first
// available one (so list the preferred driver first), a name picks that
// driver and fails if it is unavailable.
func Select(name string, candidates ...Driver) (Driver, error) {
	var why []error
	for _, d := range candidates {
		if name != "" && d.Name() != name {
			continue
		}
		err := d.Available()
		if err == nil {
			return d, nil
		}
		if name != "" {
			return nil, fmt.Errorf("vmm %s: %w", name, err)
		}
		why = append(why, fmt.Errorf("%s: %w", d.Name(), err))
	}
	if name != "" {
		return nil, fmt.Errorf("vmm %q: unknown driver (want qemu or firecracker): %w", name, errdefs.ErrInvalidArgument)
	}
	if len(why) == 0 {
		return nil, fmt.Errorf("no vmm driver configured: %w", errdefs.ErrUnavailable)
	}
	return nil, fmt.Errorf("no usable vmm: %w: %w", errors.Join(why...), errdefs.ErrUnavailable)
}
