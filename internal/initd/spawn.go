package initd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/guest"
)

// Proc is a process to start.
type Proc struct {
	Argv  []string
	Env   []string
	Dir   string
	Cred  Cred
	Files []*os.File // stdin, stdout, stderr
	// Ctty makes Files[0] the controlling terminal of a new session.
	Ctty bool
	// Cgroup, when set, is the cgroup the process starts in.
	Cgroup *appCgroup
}

// LookPath finds argv0 like execvp in a root whose PATH is path: a name
// with a slash is used as is (relative to dir). It reports a Failure with
// ReasonNotFound or ReasonNotExecutable.
func LookPath(argv0, path, dir string) (string, error) {
	check := func(p string) error {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return unix.EACCES
		}
		return nil
	}
	if strings.Contains(argv0, "/") {
		p := argv0
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if err := check(p); err != nil {
			return "", execFailure(argv0, err)
		}
		return p, nil
	}
	var firstErr error
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		p := filepath.Join(d, argv0)
		err := check(p)
		if err == nil {
			return p, nil
		}
		if firstErr == nil && errors.Is(err, unix.EACCES) {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = unix.ENOENT
	}
	return "", execFailure(argv0, firstErr)
}

// execFailure classifies an exec error the way shells and Docker do.
func execFailure(argv0 string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return &guest.Failure{Reason: guest.ReasonNotFound, Message: fmt.Sprintf("%s: executable file not found", argv0)}
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.ENOEXEC), errors.Is(err, unix.EPERM):
		return &guest.Failure{Reason: guest.ReasonNotExecutable, Message: fmt.Sprintf("%s: permission denied (not executable)", argv0)}
	}
	return &guest.Failure{Reason: guest.ReasonInit, Message: fmt.Sprintf("exec %s: %v", argv0, err)}
}

// Spawn starts p (argv[0] already resolved to a path) through the reaper.
func (r *Reaper) Spawn(path string, p Proc) (int, <-chan unix.WaitStatus, error) {
	fds := make([]uintptr, len(p.Files))
	for i, f := range p.Files {
		fds[i] = f.Fd()
	}
	attr := &syscall.ProcAttr{
		Dir:   p.Dir,
		Env:   p.Env,
		Files: fds,
		Sys: &syscall.SysProcAttr{
			Setsid:  true,
			Setctty: p.Ctty,
			Ctty:    0,
		},
	}
	if p.Cgroup != nil && p.Cgroup.fd != nil {
		attr.Sys.UseCgroupFD, attr.Sys.CgroupFD = true, int(p.Cgroup.fd.Fd())
	}
	if p.Cred.UID != 0 || p.Cred.GID != 0 || len(p.Cred.Groups) > 0 {
		attr.Sys.Credential = &syscall.Credential{Uid: p.Cred.UID, Gid: p.Cred.GID, Groups: p.Cred.Groups}
	}
	pid, ch, err := r.Start(func() (int, error) {
		return p.Cgroup.fork(func() (int, error) { return syscall.ForkExec(path, p.Argv, attr) })
	})
	if err != nil {
		return 0, nil, execFailure(p.Argv[0], err)
	}
	// init protects itself from the OOM killer; its children must not.
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid), []byte("0"), 0)
	return pid, ch, nil
}

// exitStatus converts a wait status: code, or 128+signal.
func exitStatus(ws unix.WaitStatus) guest.ExitStatus {
	if ws.Signaled() {
		s := int(ws.Signal())
		return guest.ExitStatus{Code: 128 + s, Signal: s}
	}
	return guest.ExitStatus{Code: ws.ExitStatus()}
}

// failureCode is the exit code reported for a failure (Docker's: 126 not
// executable, 127 not found, 125 anything else).
func failureCode(f *guest.Failure) int {
	switch f.Reason {
	case guest.ReasonNotFound:
		return 127
	case guest.ReasonNotExecutable:
		return 126
	}
	return 125
}
