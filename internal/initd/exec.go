package initd

import (
	"context"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/guest"
)

// Exec runs a process beside the entrypoint for the control channel, with
// the entrypoint's user, environment and working directory unless the
// request says otherwise.
func (s *supervisor) Exec(ctx context.Context, req guest.ExecRequest, stdio guest.ExecIO) (guest.ExecProcess, error) {
	if req.Entrypoint {
		return s.attachEntrypoint(ctx, req, stdio)
	}
	d, err := s.defaults()
	if err != nil {
		return nil, err
	}
	cred, extra := d.cred, req.Env
	if req.User != "" {
		passwd, _ := os.ReadFile("/etc/passwd")
		group, _ := os.ReadFile("/etc/group")
		if cred, err = ResolveUser(req.User, passwd, group); err != nil {
			return nil, err
		}
		extra = append([]string{"HOME=" + cred.Home}, req.Env...)
	}
	env := BuildEnv(d.env, extra, cred.Home, "", req.TTY)
	dir := d.workdir
	if req.WorkingDir != "" {
		dir = req.WorkingDir
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, &guest.Failure{Reason: guest.ReasonWorkdir, Message: "working dir " + dir + " does not exist"}
	}
	path, err := LookPath(req.Argv[0], lookupEnv(env, "PATH"), dir)
	if err != nil {
		return nil, err
	}
	p, err := s.start(ctx, procSpec{path: path, proc: Proc{Argv: req.Argv, Env: env, Dir: dir, Cred: cred, Cgroup: s.in.cg},
		tty: req.TTY, rows: req.Rows, cols: req.Cols}, stdio)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// procSpec is a process the control channel starts: an exec, or the
// attached entrypoint.
type procSpec struct {
	path       string
	proc       Proc // Files are set by start
	tty        bool
	rows, cols uint16
	// entry marks the attached entrypoint: it survives the host going
	// away (its output then only goes to tee).
	entry bool
	// teeOut and teeErr also get stdout's and stderr's output (the
	// console, for the entrypoint; one writer for both with a tty).
	teeOut, teeErr io.Writer
	// status converts the wait status (default exitStatus).
	status func(unix.WaitStatus) guest.ExitStatus
	// onExit runs once the process exited and its output drained.
	onExit func(unix.WaitStatus)
}

// start starts sp with stdio: a pty when sp.tty, else pipes.
func (s *supervisor) start(ctx context.Context, sp procSpec, stdio guest.ExecIO) (*execProc, error) {
	stdout, stderr := stdio.Stdout, stdio.Stderr
	if sp.entry {
		stdout, stderr = &detachable{w: stdout}, &detachable{w: stderr}
	}
	if sp.teeOut != nil {
		stdout, stderr = teeWriter{stdout, sp.teeOut}, teeWriter{stderr, sp.teeErr}
	}
	p := &execProc{done: make(chan struct{})}
	var child []*os.File // closed in init once the child has them
	if sp.tty {
		master, slave, err := openPty()
		if err != nil {
			return nil, err
		}
		_ = setWinsize(master, sp.rows, sp.cols)
		child = []*os.File{slave, slave, slave}
		p.master = master
		p.copy(master, stdout)
		if stdio.Stdin != nil {
			go func() { _, _ = io.Copy(master, stdio.Stdin) }()
		}
	} else {
		stdin, err := os.Open("/dev/null")
		if err != nil {
			return nil, err
		}
		if stdio.Stdin != nil {
			r, w, err := os.Pipe()
			if err != nil {
				return nil, err
			}
			stdin.Close()
			stdin = r
			go func() { _, _ = io.Copy(w, stdio.Stdin); w.Close() }()
		}
		or, ow, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		er, ew, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		child = []*os.File{stdin, ow, ew}
		p.copy(or, stdout)
		p.copy(er, stderr)
	}
	proc := sp.proc
	proc.Files, proc.Ctty = child, sp.tty
	pid, ch, err := s.in.reaper.Spawn(sp.path, proc)
	for _, f := range child {
		f.Close()
	}
	if err != nil {
		if p.master != nil {
			p.master.Close()
		}
		return nil, err
	}
	p.pid = pid
	status := sp.status
	if status == nil {
		status = exitStatus
	}
	go func() {
		done := ctx.Done()
		for {
			select {
			case ws := <-ch:
				p.status = status(ws)
				p.finish()
				if sp.onExit != nil {
					sp.onExit(ws)
				}
				return
			case ev := <-stdio.Events:
				if ev.Signal != 0 {
					_ = unix.Kill(pid, unix.Signal(ev.Signal))
				} else if p.master != nil {
					_ = setWinsize(p.master, ev.Rows, ev.Cols)
				}
			case <-done:
				if !sp.entry { // the host went away: an exec ends, the entrypoint goes on
					_ = unix.Kill(-pid, unix.SIGKILL)
					_ = unix.Kill(pid, unix.SIGKILL)
				}
				done = nil // wait for the status
			}
		}
	}()
	return p, nil
}

// execProc is a running exec.
type execProc struct {
	pid     int
	master  *os.File
	copies  sync.WaitGroup
	copiers []*copier
	status  guest.ExitStatus
	done    chan struct{}
}

// copier is one output stream's copy loop. idle is when it began waiting
// for more output (monotonic, monoNow), 0 while it moves output to the
// host, -1 once it has ended; r is the stream it reads.
type copier struct {
	idle atomic.Int64
	r    *os.File
}

// monoStart anchors monoNow: the monotonic clock, not the wall clock,
// which a warm start sets (ferry-init sets the restored guest's time).
var monoStart = time.Now()

// monoNow is nanoseconds since monoStart, at least 1.
func monoNow() int64 { return int64(time.Since(monoStart)) + 1 }

func (p *execProc) PID() int { return p.pid }

// copy streams r to w until EOF (or, for a pty, EIO once the last holder of
// the slave closes it).
func (p *execProc) copy(r *os.File, w io.Writer) {
	c := p.copier(r)
	go p.copyLoop(c, w)
}

// copier registers a copy loop over r (copyLoop runs it).
func (p *execProc) copier(r *os.File) *copier {
	c := &copier{r: r}
	c.idle.Store(monoNow())
	p.copiers = append(p.copiers, c)
	p.copies.Add(1)
	return c
}

func (p *execProc) copyLoop(c *copier, w io.Writer) {
	defer p.copies.Done()
	defer c.idle.Store(-1)
	buf := make([]byte, 32<<10)
	for {
		c.idle.Store(monoNow())
		n, err := c.r.Read(buf)
		c.idle.Store(0)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	if c.r != p.master {
		c.r.Close()
	}
}

// drainGrace is how long an exited process's output streams may stay open
// with nothing to read (a background child holds the pipe) before the exit
// is reported without waiting for them.
const drainGrace = 500 * time.Millisecond

// finish waits for the output to drain after the process exited: all of
// what it wrote is delivered however slowly the host reads it, and a
// stream a background child keeps open with nothing in it is given up
// after drainGrace, counted from the exit.
func (p *execProc) finish() {
	exited := monoNow()
	drained := make(chan struct{})
	go func() { p.copies.Wait(); close(drained) }()
	tick := time.NewTicker(drainGrace / 10)
	defer tick.Stop()
wait:
	for {
		select {
		case <-drained:
			break wait
		case <-tick.C:
			if p.idleFor(exited) >= drainGrace {
				break wait
			}
		}
	}
	if p.master != nil {
		p.master.Close()
	}
	close(p.done)
}

// idleFor is how long every stream still copying has been waiting on an
// empty pipe since the process exited (at exited): 0 while one moves
// output or has output in its pipe that its loop has not read yet (woken,
// not yet scheduled: a restored guest's first exec, under load, once had
// its whole output overtaken by its exit that way). A stream that waited
// while the process ran is idle from the exit on only.
func (p *execProc) idleFor(exited int64) time.Duration {
	least := time.Duration(-1)
	now := monoNow()
	for _, c := range p.copiers {
		switch since := c.idle.Load(); {
		case since == 0:
			return 0
		case since > 0:
			if pending(c.r) {
				return 0
			}
			if d := time.Duration(now - max(since, exited)); least < 0 || d < least {
				least = d
			}
		}
	}
	return max(least, 0)
}

// pending reports whether f (a pipe or a pty master) has bytes to read
// (FIONREAD, which Linux names TIOCINQ).
func pending(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	n := 0
	_ = rc.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.TIOCINQ) })
	return n > 0
}

func (p *execProc) Wait() guest.ExitStatus {
	<-p.done
	return p.status
}
