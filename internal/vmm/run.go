package vmm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Run executes plan: it writes the plan's files and links, starts the VMM
// in a new session (so neither a daemon restart nor a terminal hangup reaches
// it) with stdin on /dev/null and stdout/stderr appended to the plan's logs,
// and records pid and start time in the plan's pid file. The VMM is not tied
// to ctx. On any error nothing is left running.
func Run(ctx context.Context, plan *Plan) (*Process, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := prepare(plan); err != nil {
		return nil, fmt.Errorf("start %s: %w", plan.Driver, err)
	}
	stdout, err := openLog(plan.Stdout)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", plan.Driver, err)
	}
	defer stdout.Close()
	stderr := stdout
	if plan.Stderr != plan.Stdout {
		if stderr, err = openLog(plan.Stderr); err != nil {
			return nil, fmt.Errorf("start %s: %w", plan.Driver, err)
		}
		defer stderr.Close()
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
	for i, x := range plan.Extra {
		if x.FD != 3+i || x.File == nil {
			return nil, fmt.Errorf("start %s: extra file %q: fd %d at position %d, or not open: %w",
				plan.Driver, x.Name, x.FD, i, errdefs.ErrInvalidArgument)
		}
		cmd.ExtraFiles = append(cmd.ExtraFiles, x.File)
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("%w: %w", err, errdefs.ErrUnavailable)
		}
		return nil, fmt.Errorf("start %s: %w", plan.Driver, err)
	}
	p := &Process{
		Pid:     cmd.Process.Pid,
		Args:    plan.Args,
		PIDFile: plan.PIDFile,
		Marker:  plan.Marker,
		child:   cmd.Process,
		pidfd:   -1,
		done:    make(chan struct{}),
	}
	// Read the start time before anything reaps the child: even if it
	// already exited, its /proc entry stays while it is a zombie.
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
		return nil, fmt.Errorf("start %s: record pid: %w", plan.Driver, err)
	}
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
