package initd

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/guest"
)

// Console records (internal/guest/records.go): when the host asks for them
// in the run config and the machine has no TTY, the entrypoint's stdout
// and stderr are pipes of their own, and what init reads from each goes to
// the console as records that keep its stream. With a TTY there is one
// stream, as in Docker: the terminal's output goes to the console as is.

// consoleRecords is the console record version init writes for its
// config: 0 for none (a TTY, or a host that reads none), else the highest
// version both it and the host know.
func consoleRecords(cfg *guest.RunConfig) int {
	if cfg == nil || cfg.TTY || cfg.ConsoleRecords <= 0 {
		return 0
	}
	return min(cfg.ConsoleRecords, guest.RecordVersion)
}

// recordConsole writes the records of both streams to one console, each
// write of a stream whole (records of the two streams never interleave
// within a line), in the order each stream wrote.
type recordConsole struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

func newRecordConsole(w io.Writer) *recordConsole { return &recordConsole{w: w} }

// stream is the writer for fd (1 stdout, 2 stderr).
func (c *recordConsole) stream(fd int) io.Writer { return recordStream{c, fd} }

type recordStream struct {
	c  *recordConsole
	fd int
}

// Write writes p as records. A console that fails drops them: the
// entrypoint must not stall or die on its log.
func (s recordStream) Write(p []byte) (int, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.c.buf = guest.AppendRecord(s.c.buf[:0], s.fd, p)
	_, _ = s.c.w.Write(s.c.buf)
	if cap(s.c.buf) > 256<<10 {
		s.c.buf = nil // a burst's buffer is not kept
	}
	return len(p), nil
}

// rawConsoleOutput turns the console tty's output processing off (OPOST:
// no '\n' → "\r\n"), so that records reach the host as init wrote them.
func rawConsoleOutput(log *Logger) {
	err := withConsoleTermios(func(fd int, t *unix.Termios) error {
		t.Oflag &^= unix.OPOST
		return unix.IoctlSetTermios(fd, unix.TCSETS, t)
	})
	if err != nil {
		log.Noticef("warning: console output processing stays on: %v", err)
	}
}

// withConsoleTermios calls fn with the console tty open and its termios.
func withConsoleTermios(fn func(fd int, t *unix.Termios) error) error {
	f, err := os.OpenFile(consoleTTY(), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fd := int(f.Fd())
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	return fn(fd, t)
}

// recordsOut is the console the entrypoint's records go to: the test's
// console, else /dev/console with output processing off, open until
// power-off and written synchronously (an unattached entrypoint waits on a
// slow console as it did writing there itself; an attached one's copy is
// asynchronous, consoleOut).
func (in *Init) recordsOut(attached bool) (io.Writer, error) {
	if in.console != nil {
		return in.console, nil
	}
	rawConsoleOutput(in.log)
	if attached {
		return in.consoleOut(), nil
	}
	f, err := os.OpenFile("/dev/console", os.O_WRONLY|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("open console: %w", err)
	}
	return f, nil
}

// spawnRecorded starts the unattached entrypoint with stdout and stderr on
// pipes, copied to the console as records. Its exit reaches init (exitCh)
// once both pipes are drained, so the exit line follows all its output.
func (in *Init) spawnRecorded() error {
	out, err := in.recordsOut(false)
	if err != nil {
		return err
	}
	rc := newRecordConsole(out)
	exitCh := make(chan unix.WaitStatus, 1)
	in.oomBefore, in.cgOOMBefore = oomKills(), in.cg.oomKills()
	in.sup.markReady(in)
	p, err := in.sup.start(context.Background(), procSpec{
		path:  in.path,
		proc:  Proc{Argv: in.cfg.Argv(), Env: in.env, Dir: in.workdir, Cred: in.cred, Cgroup: in.cg},
		entry: true, status: in.entryStatus,
		onExit: func(ws unix.WaitStatus) { exitCh <- ws },
	}, guest.ExecIO{Stdout: rc.stream(1), Stderr: rc.stream(2)})
	if err != nil {
		return err
	}
	in.sup.started(p.pid)
	in.exitCh = exitCh
	return nil
}
