package vmm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Process is a running (or finished) VMM: either a child this process
// started (Run) or one a previous daemon started and this one re-adopted
// (Adopt).
type Process struct {
	Pid       int      `json:"pid"`
	StartTime uint64   `json:"start_time"` // /proc/PID/stat field 22, clock ticks since boot
	Args      []string `json:"args"`
	Marker    string   `json:"marker"`
	// UID is the uid a sandboxed VMM runs as (0: not sandboxed).
	UID int `json:"uid,omitempty"`
	// Cgroups are the VMM's own cgroup directories, removed once it exited.
	Cgroups []string `json:"cgroups,omitempty"`
	// Driver names the driver that started the VMM and Emulated says it
	// runs under TCG; both are recorded in the pid file, so an adopted
	// process has them too ("" and false in pid files of older ferry
	// versions).
	Driver   string `json:"driver,omitempty"`
	Emulated bool   `json:"emulated,omitempty"`
	PIDFile  string `json:"-"`
	// Plan is what Run executed (nil for an adopted process).
	Plan *Plan `json:"-"`

	child *os.Process // set when started by Run
	pidfd int         // set when adopted

	done     chan struct{}
	status   ExitStatus
	doneOnce sync.Once
	fdMu     sync.Mutex // guards pidfd against close while signalling
}

// ExitStatus is how a VMM ended. Known is false for an adopted process: only
// a process's parent learns its exit status (the guest's own exit code comes
// over the control channel anyway).
type ExitStatus struct {
	Known  bool   `json:"known"`
	Code   int    `json:"code"`
	Signal string `json:"signal,omitempty"`
}

func (s ExitStatus) String() string {
	switch {
	case !s.Known:
		return "exited (status unknown)"
	case s.Signal != "":
		return "killed by " + s.Signal
	}
	return fmt.Sprintf("exit status %d", s.Code)
}

func exitStatus(ps *os.ProcessState, err error) ExitStatus {
	if ps == nil {
		return ExitStatus{}
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		return ExitStatus{Known: true, Code: -1, Signal: unix.SignalName(ws.Signal())}
	}
	return ExitStatus{Known: true, Code: ps.ExitCode()}
}

// Adopted reports whether this process was re-adopted rather than started.
func (p *Process) Adopted() bool { return p.child == nil }

// Done is closed when the VMM has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the VMM to exit or ctx to end.
func (p *Process) Wait(ctx context.Context) (ExitStatus, error) {
	select {
	case <-p.done:
		return p.status, nil
	case <-ctx.Done():
		return ExitStatus{}, ctx.Err()
	}
}

// Signal sends sig to the VMM. It returns os.ErrProcessDone once it exited.
func (p *Process) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return os.ErrProcessDone
	default:
	}
	if p.child != nil {
		return p.child.Signal(sig)
	}
	p.fdMu.Lock()
	defer p.fdMu.Unlock()
	if p.pidfd < 0 {
		return os.ErrProcessDone
	}
	err := unix.PidfdSendSignal(p.pidfd, sig, nil, 0)
	if errors.Is(err, unix.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// Kill sends SIGKILL.
func (p *Process) Kill() error {
	err := p.Signal(syscall.SIGKILL)
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// Stop asks the VMM to exit with SIGTERM (QEMU and Firecracker both exit
// at once on it; a graceful guest shutdown is the control channel's job, done
// before Stop), waits up to grace, then kills it and waits for it to be gone.
func Stop(ctx context.Context, p *Process, grace time.Duration) (ExitStatus, error) {
	if err := p.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return ExitStatus{}, fmt.Errorf("stop vmm %d: %w", p.Pid, err)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return p.status, nil
	case <-ctx.Done():
	case <-t.C:
	}
	if err := p.Kill(); err != nil {
		return ExitStatus{}, fmt.Errorf("kill vmm %d: %w", p.Pid, err)
	}
	// SIGKILL cannot be ignored; wait for the reaper even if ctx ended.
	select {
	case <-p.done:
		return p.status, nil
	case <-time.After(10 * time.Second):
		return ExitStatus{}, fmt.Errorf("vmm %d still running 10s after SIGKILL: %w", p.Pid, errdefs.ErrUnavailable)
	}
}

// finish marks the process exited and removes its pid file if the file
// still names it.
func (p *Process) finish() {
	p.doneOnce.Do(func() {
		p.fdMu.Lock()
		if p.pidfd >= 0 && p.child == nil {
			_ = unix.Close(p.pidfd)
			p.pidfd = -1
		}
		p.fdMu.Unlock()
		if p.PIDFile != "" {
			if rec, err := readPIDFile(p.PIDFile); err == nil && rec.Pid == p.Pid && rec.StartTime == p.StartTime {
				_ = os.Remove(p.PIDFile)
			}
		}
		removeCgroups(p.Cgroups)
		close(p.done)
	})
}

func (p *Process) writePIDFile() error {
	if p.PIDFile == "" {
		return nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return writeFileAtomic(p.PIDFile, append(b, '\n'), 0o644)
}

func readPIDFile(path string) (*Process, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rec Process
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("pid file %s: %w", path, err)
	}
	if rec.Pid <= 0 {
		return nil, fmt.Errorf("pid file %s: no pid", path)
	}
	return &rec, nil
}

// Adopt re-attaches to the VMM recorded in pidfile by a previous daemon.
// It holds the process by a pidfd and accepts it only when the pid's start
// time equals the recorded one and its command line is the recorded one (or,
// when a wrapper such as jailer exec'd the VMM, still carries the recorded
// marker). A VMM that is gone, or a pid now used by another process, is an
// ErrNotFound; the stale pid file is then removed.
func Adopt(pidfile string) (*Process, error) {
	rec, err := readPIDFile(pidfile)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("adopt vmm: %w: %w", err, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("adopt vmm: %w", err)
	}
	// Take the pidfd first: after this the pid cannot be recycled under us,
	// so checking start time and cmdline afterwards is race-free.
	// A VMM that exited while no daemon ran left its pid file and its
	// cgroup: both go (rmdir fails harmlessly on a cgroup still in use).
	fd, err := unix.PidfdOpen(rec.Pid, 0)
	if err != nil {
		_ = os.Remove(pidfile)
		removeCgroups(rec.Cgroups)
		return nil, fmt.Errorf("adopt vmm %d: not running: %w", rec.Pid, errdefs.ErrNotFound)
	}
	if why := rec.mismatch(); why != "" {
		_ = unix.Close(fd)
		_ = os.Remove(pidfile)
		removeCgroups(rec.Cgroups)
		return nil, fmt.Errorf("adopt vmm %d: %s (stale pid file %s): %w", rec.Pid, why, pidfile, errdefs.ErrNotFound)
	}
	p := &Process{
		Pid: rec.Pid, StartTime: rec.StartTime, Args: rec.Args, Marker: rec.Marker, UID: rec.UID, Cgroups: rec.Cgroups,
		Driver: rec.Driver, Emulated: rec.Emulated,
		PIDFile: pidfile, pidfd: fd, done: make(chan struct{}),
	}
	go p.watchPidfd()
	return p, nil
}

// mismatch says why the live process with rec.Pid is not the recorded one.
func (rec *Process) mismatch() string {
	st, err := StartTime(rec.Pid)
	if err != nil {
		return "not running"
	}
	if st != rec.StartTime {
		return fmt.Sprintf("pid reused: start time %d, recorded %d", st, rec.StartTime)
	}
	args, err := Cmdline(rec.Pid)
	if err != nil || len(args) == 0 {
		return "no command line (zombie?)"
	}
	if slices.Equal(args, rec.Args) || (rec.Marker != "" && (slices.Contains(args, rec.Marker) || slices.Contains(args, "--id="+rec.Marker))) {
		return "" // a wrapper exec'd the VMM: jailer runs `firecracker --id=<marker> …`
	}
	return fmt.Sprintf("command line %q is not the recorded VMM", args)
}

// watchPidfd closes done when the adopted process exits (a pidfd polls
// readable then).
func (p *Process) watchPidfd() {
	fds := []unix.PollFd{{Fd: int32(p.pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n > 0 {
			break
		}
	}
	p.status = ExitStatus{}
	p.finish()
}

// LookPath is exec.LookPath, wrapped as an ErrUnavailable naming the binary.
func LookPath(name, hint string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found in PATH (%s): %w", name, hint, errdefs.ErrUnavailable)
	}
	return p, nil
}

// AdoptByMarker finds a live VMM that carries marker in its command line and
// an argument under dir (the machine's directory, so another data root's
// machine is never matched), and adopts it. It finds a VMM that a daemon
// killed between starting it and writing its pid file; without it such a
// VMM would run on, untracked. ErrNotFound when there is none.
func AdoptByMarker(marker, dir, pidfile string) (*Process, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", procRoot, err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		args, err := Cmdline(pid)
		if err != nil || !slices.Contains(args, marker) || !slices.ContainsFunc(args, func(a string) bool { return strings.Contains(a, dir+"/") }) {
			continue
		}
		st, err := StartTime(pid)
		if err != nil {
			continue
		}
		rec := &Process{Pid: pid, StartTime: st, Args: args, Marker: marker, PIDFile: pidfile}
		if err := rec.writePIDFile(); err != nil {
			return nil, fmt.Errorf("adopt vmm %d: %w", pid, err)
		}
		return Adopt(pidfile)
	}
	return nil, fmt.Errorf("no vmm with marker %s: %w", marker, errdefs.ErrNotFound)
}
