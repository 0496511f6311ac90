package initd

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/guest"
)

// An attached entrypoint (RunConfig.Attach, `ferry run -it`): init does not
// start the entrypoint at the end of its boot but waits for a host's exec
// request marked Entrypoint, then starts the entrypoint (the run config's
// argv, env, user and working dir) with that stream's stdio. Its output
// also goes to the console, so the machine's log has it; its exit is the
// machine's exit.

// defaultAttachTimeout is how long init waits for a host to attach.
const defaultAttachTimeout = 60 * time.Second

// attachReq is a host's request to attach to the entrypoint, handed from
// the control channel to init.
type attachReq struct {
	ctx   context.Context
	req   guest.ExecRequest
	stdio guest.ExecIO
	reply chan attachReply
}

type attachReply struct {
	p   guest.ExecProcess
	err error
}

// attachEntrypoint hands an attach request to init and waits for the
// entrypoint to be started. Only the first request is accepted, and only
// while init has not started the entrypoint.
func (s *supervisor) attachEntrypoint(ctx context.Context, req guest.ExecRequest, stdio guest.ExecIO) (guest.ExecProcess, error) {
	ar := attachReq{ctx: ctx, req: req, stdio: stdio, reply: make(chan attachReply, 1)}
	s.mu.Lock()
	if s.attachClosed {
		s.mu.Unlock()
		return nil, &guest.Failure{Reason: guest.ReasonInit, Message: "attach: the entrypoint is not waiting for a host (the run config has no attach, or it was started already)"}
	}
	s.attachClosed = true
	s.attachCh <- ar // buffered: one request at most
	s.mu.Unlock()
	select {
	case r := <-ar.reply:
		return r.p, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// closeAttach refuses later attach requests and returns the pending one,
// if any.
func (s *supervisor) closeAttach() *attachReq {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attachClosed = true
	select {
	case ar := <-s.attachCh:
		return &ar
	default:
		return nil
	}
}

// awaitAttach waits up to timeout for a host to attach; nil when none did.
func (s *supervisor) awaitAttach(timeout time.Duration) *attachReq {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case ar := <-s.attachCh:
		return &ar
	case <-t.C:
		return s.closeAttach()
	}
}

// refuseAttach answers a pending attach request with err.
func (s *supervisor) refuseAttach(err error) {
	if ar := s.closeAttach(); ar != nil {
		ar.reply <- attachReply{err: err}
	}
}

// attachTimeout is the run config's attach timeout.
func (in *Init) attachTimeout() time.Duration {
	if in.cfg.AttachTimeoutMS > 0 {
		return time.Duration(in.cfg.AttachTimeoutMS) * time.Millisecond
	}
	return defaultAttachTimeout
}

// waitAttached waits for a host to attach and starts the entrypoint with
// its stdio. It reports false when no host attached in time (or the
// request does not fit the config): the caller starts it unattached.
func (in *Init) waitAttached() (bool, error) {
	in.log.Infof("waiting up to %s for a host to attach to the entrypoint", in.attachTimeout())
	ar := in.sup.awaitAttach(in.attachTimeout())
	if ar == nil {
		in.log.Noticef("no host attached within %s: starting the entrypoint unattached", in.attachTimeout())
		return false, nil
	}
	if ar.req.TTY != in.cfg.TTY {
		ar.reply <- attachReply{err: &guest.Failure{Reason: guest.ReasonInit, Message: fmt.Sprintf("attach: tty %v does not match the run config's tty %v", ar.req.TTY, in.cfg.TTY)}}
		return false, nil
	}
	// The console gets a copy: each stream's records without a tty when
	// the host reads them, else the output as is.
	var teeOut, teeErr io.Writer
	if consoleRecords(in.cfg) > 0 {
		w, _ := in.recordsOut(true) // attached: never fails
		rc := newRecordConsole(w)
		teeOut, teeErr = rc.stream(1), rc.stream(2)
	} else {
		teeOut = in.consoleOut()
		teeErr = teeOut
	}
	exitCh := make(chan unix.WaitStatus, 1)
	in.oomBefore, in.cgOOMBefore = oomKills(), in.cg.oomKills()
	p, err := in.sup.start(ar.ctx, procSpec{
		path: in.path,
		proc: Proc{Argv: in.cfg.Argv(), Env: in.env, Dir: in.workdir, Cred: in.cred, Cgroup: in.cg},
		tty:  in.cfg.TTY, rows: ar.req.Rows, cols: ar.req.Cols,
		entry: true, teeOut: teeOut, teeErr: teeErr, status: in.entryStatus,
		onExit: func(ws unix.WaitStatus) { exitCh <- ws },
	}, ar.stdio)
	if err != nil {
		ar.reply <- attachReply{err: err}
		return true, err
	}
	ar.reply <- attachReply{p: p}
	in.sup.started(p.pid)
	in.exitCh = exitCh
	return true, nil
}

// consoleOut is where the attached entrypoint's output is copied: the
// console, written asynchronously (a slow serial console must not slow
// the terminal down; output is dropped rather than blocking).
func (in *Init) consoleOut() io.Writer {
	if in.console != nil {
		return in.console
	}
	f, err := os.OpenFile("/dev/console", os.O_WRONLY|unix.O_NOCTTY, 0)
	if err != nil {
		in.log.Noticef("warning: open console: %v: the attached entrypoint's output is not logged", err)
		return io.Discard
	}
	return newAsyncWriter(f, 256)
}

// entryStatus is the entrypoint's exit status, with OOM detection.
func (in *Init) entryStatus(ws unix.WaitStatus) guest.ExitStatus {
	ex := exitStatus(ws)
	// As Docker's State.OOMKilled: any process of the app (the entrypoint,
	// a child of an entrypoint script, an exec) killed by the OOM killer.
	ex.OOMKilled = in.oomKilled()
	return ex
}

// detachable writes to w until w fails once (the host went away), then
// discards: the entrypoint must not block or die on a lost host.
type detachable struct {
	w    io.Writer
	dead bool
}

func (d *detachable) Write(p []byte) (int, error) {
	if d.w != nil && !d.dead {
		if _, err := d.w.Write(p); err != nil {
			d.dead = true
		}
	}
	return len(p), nil
}

// teeWriter writes to w and copies to tee, ignoring tee's errors.
type teeWriter struct{ w, tee io.Writer }

func (t teeWriter) Write(p []byte) (int, error) {
	_, _ = t.tee.Write(p)
	if t.w == nil {
		return len(p), nil
	}
	return t.w.Write(p)
}

// asyncWriter writes chunks to w from its own goroutine, dropping them
// when n are queued.
type asyncWriter struct{ ch chan []byte }

func newAsyncWriter(w io.Writer, n int) *asyncWriter {
	a := &asyncWriter{ch: make(chan []byte, n)}
	go func() {
		for b := range a.ch {
			_, _ = w.Write(b)
		}
	}()
	return a
}

func (a *asyncWriter) Write(p []byte) (int, error) {
	select {
	case a.ch <- append([]byte(nil), p...):
	default:
	}
	return len(p), nil
}
