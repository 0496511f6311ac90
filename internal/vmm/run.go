package vmm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Run executes plan: it writes the plan's files and links, opens the
// descriptors the VMM inherits (Plan.Extra), starts the console writer
// (Plan.Console), and starts the VMM in a new session (so neither a daemon
// restart nor a terminal hangup reaches it) with stdin on /dev/null and
// stdout/stderr appended to the plan's logs — confined by Plan.Sandbox when
// set — and records pid and start time in the plan's pid file. The plan's
// helpers (Plan.Helpers) are started first. The VMM is not tied to ctx. On
// any error nothing is left running.
func Run(ctx context.Context, plan *Plan) (*Process, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := run(plan)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", plan.Driver, err)
	}
	return p, nil
}

func run(plan *Plan) (*Process, error) {
	if err := prepare(plan); err != nil {
		return nil, err
	}
	helpers, err := startHelpers(plan)
	if err != nil {
		return nil, err
	}
	vmmStarted := false
	defer func() {
		if !vmmStarted {
			stopAll(helpers)
		}
	}()
	// What this process opens for the VMM is closed once the VMM has its
	// copies (or on error).
	var opened []io.Closer
	defer func() {
		for _, c := range opened {
			_ = c.Close()
		}
	}()
	keep := func(f *os.File) *os.File { opened = append(opened, f); return f }
	stdout, err := openLog(plan.Stdout)
	if err != nil {
		return nil, err
	}
	keep(stdout)
	stderr := stdout
	if plan.Stderr != plan.Stdout {
		if stderr, err = openLog(plan.Stderr); err != nil {
			return nil, err
		}
		keep(stderr)
	}
	cmd := &exec.Cmd{
		Path:        plan.Path,
		Args:        plan.Args,
		Env:         plan.Env,
		Dir:         plan.Dir,
		Stdout:      stdout,
		Stderr:      stderr,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if cmd.Env == nil {
		cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	}

	uid := 0
	var cg *cgroupDirs
	var lock *os.File
	if sb := plan.Sandbox; sb != nil {
		if uid, lock, err = sb.UIDs.lock(plan.Marker); err != nil {
			return nil, err
		}
		keep(lock)
		for _, path := range sb.Chown {
			if err := os.Chown(path, uid, uid); err != nil {
				return nil, fmt.Errorf("sandbox: %w", err)
			}
		}
		for _, x := range plan.Extra {
			if x.Tap && x.File != nil {
				if err := setTapOwner(x.File, uid); err != nil {
					return nil, fmt.Errorf("sandbox: %s: %w", x.Name, err)
				}
			}
		}
		if sb.DropsItself {
			cmd.Args = slices.Clone(cmd.Args)
			for i, a := range cmd.Args {
				switch a {
				case UIDArg, GIDArg:
					cmd.Args[i] = strconv.Itoa(uid)
				}
			}
		} else {
			groups := make([]uint32, len(sb.Groups))
			for i, g := range sb.Groups {
				groups[i] = uint32(g) //nolint:gosec // G115: gids from stat
			}
			cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: groups} //nolint:gosec // G115: UIDRange.Validate keeps uids below 2^31
		}
		if sb.Cgroup != nil {
			if cg, err = sb.Cgroup.create(); err != nil {
				return nil, fmt.Errorf("sandbox: %w", err)
			}
			defer cg.closeFD()
			if cg.v2 != nil {
				cmd.SysProcAttr.UseCgroupFD = true
				cmd.SysProcAttr.CgroupFD = int(cg.v2.Fd())
			}
		}
	}
	started := false
	defer func() {
		if !started {
			cg.remove()
		}
	}()

	var console *os.File
	if plan.Console != nil {
		if console, err = startConsole(plan.Console, stderr); err != nil {
			return nil, err
		}
		keep(console) // closing it ends the writer if the VMM never starts
		if plan.Console.Stdout {
			cmd.Stdout = console
		}
	}
	for i, x := range plan.Extra {
		if x.FD != 3+i {
			return nil, fmt.Errorf("extra file %q: fd %d at position %d: %w", x.Name, x.FD, i, errdefs.ErrInvalidArgument)
		}
		f, err := openExtra(x, console)
		if err != nil {
			return nil, fmt.Errorf("extra file %q: %w", x.Name, err)
		}
		if f != x.File {
			keep(f)
		}
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	}
	if lock != nil && !plan.Sandbox.DropsItself {
		// The VMM holds its uid's lock for its lifetime; it goes last, so
		// the plan's descriptors keep their numbers.
		cmd.ExtraFiles = append(cmd.ExtraFiles, lock)
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("%w: %w", err, errdefs.ErrUnavailable)
		}
		return nil, err
	}
	started = true
	p := &Process{
		Pid:      cmd.Process.Pid,
		Args:     cmd.Args,
		PIDFile:  plan.PIDFile,
		Marker:   plan.Marker,
		UID:      uid,
		Driver:   plan.Driver,
		Emulated: plan.Emulated,
		Plan:     plan,
		child:    cmd.Process,
		pidfd:    -1,
		done:     make(chan struct{}),
	}
	if cg != nil {
		p.Cgroups = cg.dirs
	}
	// Read the start time before anything reaps the child: even if it
	// already exited, its /proc entry stays while it is a zombie.
	st, err := StartTime(p.Pid)
	if err == nil && cg != nil {
		err = cg.join(p.Pid)
	}
	if err == nil && plan.Sandbox != nil && plan.Sandbox.DropsItself {
		err = waitUID(p.Pid, uid) // then its lock may go: the process holds the uid
	}
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
	vmmStarted = true
	return p, nil
}

// prepare writes the plan's files and makes its links.
func prepare(plan *Plan) error {
	for _, f := range plan.Files {
		mode := f.Mode
		if mode == 0 {
			mode = 0o600
		}
		if err := writeFileAtomic(f.Path, []byte(f.Content), mode); err != nil {
			return err
		}
		if err := chown(f.Path, f.Owner); err != nil {
			return err
		}
	}
	for _, l := range plan.Links {
		if err := linkOrCopy(l.Source, l.Target); err != nil {
			return err
		}
		if err := chown(l.Target, l.Owner); err != nil {
			return err
		}
	}
	if plan.PIDFile != "" {
		if err := os.MkdirAll(filepath.Dir(plan.PIDFile), 0o750); err != nil {
			return err
		}
	}
	return nil
}

// openExtra opens what x describes.
func openExtra(x ExtraFile, console *os.File) (*os.File, error) {
	switch {
	case x.File != nil:
		return x.File, nil
	case x.Console:
		if console == nil {
			return nil, fmt.Errorf("no console in the plan: %w", errdefs.ErrInvalidArgument)
		}
		return console, nil
	case x.Listen:
		return listenUnix(x.Path)
	case x.Dial:
		return dialUnix(x.Path)
	case x.Path != "":
		flag := os.O_RDONLY
		if x.Write {
			flag = os.O_RDWR
		}
		return os.OpenFile(x.Path, flag, 0)
	}
	return nil, fmt.Errorf("nothing to open: %w", errdefs.ErrInvalidArgument)
}

// listenUnix creates a listening unix socket at path (replacing a stale
// one) and returns its descriptor; the socket file stays when it closes.
func listenUnix(path string) (*os.File, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	l.SetUnlinkOnClose(false)
	defer l.Close()
	return l.File()
}

// dialUnix connects to the unix socket at path (a helper's, listening
// already) and returns the connected socket's descriptor.
func dialUnix(path string) (*os.File, error) {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.File()
}

func openLog(path string) (*os.File, error) {
	if path == "" {
		return os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// linkOrCopy makes target a hard link to source, copying when they are on
// different filesystems. An existing target is replaced.
func linkOrCopy(source, target string) error {
	// A jail's directories must stay traversable by the uid jailer drops to.
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil { //nolint:gosec // see above

		return err
	}
	_ = os.Remove(target)
	if err := os.Link(source, target); err == nil {
		return nil
	}
	in, err := os.Open(source)
	if err != nil {
		return fmt.Errorf("link %s: %w", source, err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return fmt.Errorf("link %s: %w", target, err)
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", source, target, err)
	}
	return nil
}

func chown(path string, o *Owner) error {
	if o == nil {
		return nil
	}
	if err := os.Chown(path, o.UID, o.GID); err != nil {
		return fmt.Errorf("chown %s: %w", path, err)
	}
	return nil
}
