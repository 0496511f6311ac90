package vmm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Helper is a process a VMM needs beside it: a virtiofsd per shared
// directory. Run starts it before the VMM, in its own session like the VMM
// (it outlives a daemon restart with it), listening on a unix socket Run
// creates and hands over as fd 3. It exits when the VMM disconnects;
// ReapHelpers kills what is left of a machine's helpers.
type Helper struct {
	Name string   `json:"name"` // unique in the plan, e.g. "virtiofsd-data"
	Path string   `json:"path"`
	Args []string `json:"args"` // Args[0] is the helper's marker (HelperMarker), its argv[0]
	Log  string   `json:"log"`  // stdout and stderr, appended
	// PIDFile records pid and start time (for ReapHelpers).
	PIDFile string `json:"pid_file"`
	// Listen is the unix socket Run creates and passes as fd 3.
	Listen string `json:"listen"`
	// ReadOnly are host paths the helper sees read-only, recursively, in a
	// mount namespace of its own (the host's mounts are not touched).
	ReadOnly []string `json:"read_only,omitempty"`
}

// HelperMarker is the argv[0] of a machine's helper: how ReapHelpers finds
// one whose pid file was never written. It names the machine's directory
// too: two daemons on one host (data roots of their own, as scale-out's
// test hosts) may hold machines of one ID, and neither may reap the
// other's helpers.
func HelperMarker(spec Spec, name string) string { return spec.Marker() + "/" + name + "@" + spec.Dir }

// helperPIDGlob matches the pid files of helpers in a machine directory.
const helperPIDGlob = "helper-*.pid"

// HelperPIDFile is where a helper's pid file lives.
func HelperPIDFile(dir, name string) string { return filepath.Join(dir, "helper-"+name+".pid") }

// startHelpers starts plan's helpers in order; on error the ones started
// are killed.
func startHelpers(plan *Plan) ([]*Process, error) {
	var started []*Process
	for _, h := range plan.Helpers {
		p, err := startHelper(h)
		if err != nil {
			stopAll(started)
			return nil, fmt.Errorf("start %s: %w", h.Name, err)
		}
		started = append(started, p)
	}
	return started, nil
}

func stopAll(ps []*Process) {
	for _, p := range ps {
		_, _ = Stop(context.Background(), p, 0)
	}
}

func startHelper(h Helper) (*Process, error) {
	if err := os.MkdirAll(filepath.Dir(h.Listen), 0o750); err != nil {
		return nil, err
	}
	_ = os.Remove(h.Listen)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: h.Listen, Net: "unix"})
	if err != nil {
		return nil, err
	}
	l.SetUnlinkOnClose(false) // the helper keeps listening on it
	sock, err := l.File()
	_ = l.Close()
	if err != nil {
		return nil, err
	}
	defer sock.Close()
	log, err := openLog(h.Log)
	if err != nil {
		return nil, err
	}
	defer log.Close()
	cmd := &exec.Cmd{
		Path: h.Path, Args: h.Args, Stdout: log, Stderr: log,
		Env:         []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		ExtraFiles:  []*os.File{sock},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := startIn(cmd, h.ReadOnly); err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("%w: %w", err, errdefs.ErrUnavailable)
		}
		return nil, err
	}
	p := &Process{Pid: cmd.Process.Pid, Args: h.Args, PIDFile: h.PIDFile, Marker: h.Args[0],
		child: cmd.Process, pidfd: -1, done: make(chan struct{})}
	st, err := StartTime(p.Pid)
	if err == nil {
		p.StartTime = st
		err = p.writePIDFile()
	}
	go func() {
		werr := cmd.Wait()
		p.status = exitStatus(cmd.ProcessState, werr)
		p.finish()
	}()
	if err != nil {
		_ = p.Kill()
		<-p.done
		return nil, fmt.Errorf("record pid: %w", err)
	}
	return p, nil
}

// startIn starts cmd; with readOnly paths, from a thread that has its own
// mount namespace in which those paths are read-only bind mounts of
// themselves (the child inherits the thread's namespace). The thread is
// never returned to the Go scheduler: it ends with its goroutine.
func startIn(cmd *exec.Cmd, readOnly []string) error {
	if len(readOnly) == 0 {
		return cmd.Start()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // no Unlock: this thread's namespace is not the daemon's
		errc <- func() error {
			if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
				return fmt.Errorf("unshare mount namespace: %w", err)
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				return fmt.Errorf("make mounts private: %w", err)
			}
			for _, p := range readOnly {
				if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
					return fmt.Errorf("bind %s: %w", p, err)
				}
				attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
				if err := unix.MountSetattr(unix.AT_FDCWD, p, unix.AT_RECURSIVE, attr); err != nil {
					return fmt.Errorf("make %s read-only: %w", p, err)
				}
			}
			return cmd.Start()
		}()
	}()
	return <-errc
}

// ReapHelpers kills the helpers of the machine in dir that still run: by
// their pid files, and (a daemon killed before writing one) by their
// marker in argv[0] (HelperMarker; one without a directory, from before
// markers named it, by the machine's ID alone). It returns how many it
// killed.
func ReapHelpers(ctx context.Context, spec Spec) int {
	n := 0
	files, _ := filepath.Glob(filepath.Join(spec.Dir, helperPIDGlob))
	for _, f := range files {
		p, err := Adopt(f)
		if err != nil {
			continue
		}
		if _, err := Stop(ctx, p, 0); err == nil {
			n++
		}
	}
	prefix := spec.Marker() + "/"
	ents, _ := os.ReadDir(procRoot)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		args, err := Cmdline(pid)
		if err != nil || len(args) == 0 || !helperOf(args[0], prefix, spec.Dir) {
			continue
		}
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue
		}
		if a, err := Cmdline(pid); err == nil && slices.Equal(a, args) {
			_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
			n++
		}
		_ = unix.Close(fd)
	}
	return n
}

// helperOf reports whether argv0 is the marker of a helper of the machine
// whose marker prefix and directory are given.
func helperOf(argv0, prefix, dir string) bool {
	rest, ok := strings.CutPrefix(argv0, prefix)
	if !ok {
		return false
	}
	return strings.HasSuffix(rest, "@"+dir) || !strings.Contains(rest, "@")
}
