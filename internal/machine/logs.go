package machine

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/logs"
)

// LogOptions select a machine's output.
type LogOptions struct {
	Follow bool      // keep streaming while the machine runs
	Tail   int       // last N lines only; <= 0: everything
	Since  time.Time // only lines written at or after Since
	Until  time.Time // only lines written before Until; with Follow it ends there
}

// pollInterval is how often a followed log is checked for new output;
// fastPoll how often in the first fastPollFor of a follow (a machine just
// started: its first lines) and for fastPollFor after each output, so a
// line reaches the follower within milliseconds of the guest writing it.
const (
	pollInterval = 20 * time.Millisecond
	fastPoll     = 2 * time.Millisecond
	fastPollFor  = 2 * time.Second
)

// MaxLogLine is the longest piece of a line Logs hands out: a longer line
// (a guest writing without newlines) comes in pieces of this size, one
// after the other, so a reader never holds more.
const MaxLogLine = 64 << 10

// maxLogHistory is how much of the end of each log file Logs reads back
// (the console writer keeps a file far smaller; this bounds a file from
// elsewhere).
const maxLogHistory = 8 << 20

// Logs streams a machine's output to fn, one line at a time (or a piece of
// a line once it has waited for its end for a moment: prompts), each with
// its stream and the time the console writer stored it (internal/logs).
// Untagged console lines (a TTY's, an older guest's) come as stdout,
// without the platform's own lines (the exit marker, kernel messages) and,
// unless the machine has a TTY, with "\r\n" made "\n". A line of a file
// the writer did not write has no time of its own: it gets the file's
// modification time (the time it is read while followed), which Since and
// Until then go by. With Follow it returns when the machine has
// stopped and its output is drained, at Until, or when ctx ends.
func (m *Manager) Logs(ctx context.Context, app, ref string, opt LogOptions, fn func(logs.Entry) error) error {
	mc, err := m.Get(app, ref)
	if err != nil {
		return err
	}
	id, tty := mc.ID, mc.Config.Init.TTY
	if opt.Follow && !opt.Until.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, opt.Until)
		defer cancel()
	}
	path := filepath.Join(m.dir(id), "console.log")
	var lines []logs.Entry // history, kept for Tail
	keep := func(e logs.Entry) error {
		lines = append(lines, e)
		return nil
	}
	asm := &assembler{tty: tty, opt: opt, emit: keep}

	// History: the rotated file, then the current one.
	for _, p := range []string{path + ".1", path} {
		st, err := os.Stat(p)
		if err != nil {
			continue
		}
		if p == path && opt.Follow {
			break // streamed below, so that nothing is read twice
		}
		b, _, err := readTail(p, maxLogHistory)
		if err != nil {
			continue
		}
		asm.mtime = st.ModTime()
		for _, l := range splitLines(b) {
			if err := asm.add(l); err != nil {
				return err
			}
		}
	}
	f, err := os.Open(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if f != nil {
		defer f.Close()
	}
	emitTail := func() error {
		if err := asm.flush(); err != nil {
			return err
		}
		if opt.Tail > 0 && len(lines) > opt.Tail {
			lines = lines[len(lines)-opt.Tail:]
		}
		for _, e := range lines {
			if err := fn(e); err != nil {
				return err
			}
		}
		lines = nil
		return nil
	}
	if !opt.Follow {
		return emitTail()
	}
	// Follow: the current file from its start (tail applied to what exists
	// now), then new output as it comes.
	var partial []byte
	var off int64
	if f != nil {
		b, end, err := readTailFile(f, maxLogHistory)
		if err != nil {
			return err
		}
		off = end
		if st, err := f.Stat(); err == nil {
			asm.mtime = st.ModTime()
		}
		cur := splitLines(b)
		if n := len(cur); n > 0 && !bytes.HasSuffix(cur[n-1], []byte("\n")) {
			partial, cur = cur[n-1], cur[:n-1]
		}
		for _, l := range cur {
			if err := asm.add(l); err != nil {
				return err
			}
		}
	}
	if err := emitTail(); err != nil {
		return err
	}
	asm.emit, asm.mtime = fn, time.Time{}
	return m.follow(ctx, id, path, f, off, partial, asm)
}

// assembler turns the store's lines into what Logs hands out: pieces of
// one stream joined into lines (up to MaxLogLine), platform lines left
// out, the time window applied.
type assembler struct {
	tty   bool
	opt   LogOptions
	mtime time.Time // of the file being read, for lines without a time
	emit  func(logs.Entry) error

	pending []logs.Entry // a piece per stream, waiting for the rest
}

// add takes one line of a store file (a raw console line when the file is
// not the store's).
func (a *assembler) add(line []byte) error {
	e, _ := logs.Parse(line)
	for i := range a.pending {
		p := a.pending[i]
		if p.Stream != e.Stream {
			continue
		}
		a.pending = append(a.pending[:i], a.pending[i+1:]...)
		if len(p.Data)+len(e.Data) > MaxLogLine {
			if err := a.out(p); err != nil { // a piece of MaxLogLine at most
				return err
			}
			break
		}
		p.Data, p.Partial = append(p.Data, e.Data...), e.Partial
		if p.Partial && len(p.Data) < MaxLogLine {
			a.pending = append(a.pending, p)
			return nil
		}
		return a.out(p)
	}
	if e.Partial && len(e.Data) < MaxLogLine {
		e.Data = append([]byte(nil), e.Data...)
		a.pending = append(a.pending, e)
		return nil
	}
	return a.out(e)
}

// flush hands out the pieces still waiting, oldest first.
func (a *assembler) flush() error {
	p := a.pending
	a.pending = nil
	for _, e := range p {
		if err := a.out(e); err != nil {
			return err
		}
	}
	return nil
}

func (a *assembler) out(e logs.Entry) error {
	if e.Time.IsZero() { // a line of a file the writer did not write
		e.Time = a.mtime
		if e.Time.IsZero() {
			e.Time = time.Now() // followed as it comes
		}
	}
	t := e.Time
	if (!a.opt.Since.IsZero() && t.Before(a.opt.Since)) || (!a.opt.Until.IsZero() && !t.Before(a.opt.Until)) {
		return nil
	}
	if e.Stream == logs.Console {
		if guest.PlatformLine(e.Data) {
			return nil
		}
		e.Stream = logs.Stdout
		if !a.tty && bytes.HasSuffix(e.Data, []byte("\r\n")) {
			e.Data = append(e.Data[:len(e.Data)-2:len(e.Data)-2], '\n')
		}
	}
	return a.emit(e)
}

// follow streams what is appended to path after off until the machine is
// no longer running and the file is drained.
func (m *Manager) follow(ctx context.Context, id, path string, f *os.File, off int64, partial []byte, asm *assembler) error {
	events, cancel := m.Subscribe("", id)
	defer cancel()
	var partialSince time.Time
	buf := make([]byte, 64<<10)
	timer := time.NewTimer(fastPoll)
	defer timer.Stop()
	lastOutput := time.Now() // the follow's start counts as output
	// drain hands what f holds beyond off to asm: whole lines, and pieces
	// of MaxLogLine of a longer one.
	drain := func() (bool, error) {
		read := false
		for f != nil {
			n, err := f.ReadAt(buf, off)
			if n > 0 {
				read = true
				off += int64(n)
				partial = append(partial, buf[:n]...)
				for {
					i := bytes.IndexByte(partial, '\n')
					if i < 0 && len(partial) < MaxLogLine {
						break
					}
					if i < 0 || i >= MaxLogLine {
						i = MaxLogLine - 1
					}
					line := append([]byte(nil), partial[:i+1]...)
					partial = append(partial[:0], partial[i+1:]...)
					if err := asm.add(line); err != nil {
						return read, err
					}
				}
				partialSince = time.Now()
			}
			if err != nil || n == 0 {
				break
			}
		}
		return read, nil
	}
	// idle hands out what waits for its end (a prompt) once nothing more
	// came for a moment: a raw line's start, the store's pieces.
	idle := func() error {
		if len(partial) > 0 {
			if err := asm.add(partial); err != nil {
				return err
			}
			partial = nil
		}
		return asm.flush()
	}
	for {
		// Reopen on rotation (the file was renamed to .1 and a new one
		// started, or it was truncated) or when it appears; what the old
		// file still held is read first.
		if st, err := os.Stat(path); err == nil {
			var fst os.FileInfo
			if f != nil {
				fst, _ = f.Stat()
			}
			if f == nil || fst == nil || !os.SameFile(st, fst) || st.Size() < off {
				if f != nil {
					if _, err := drain(); err != nil {
						return err
					}
					f.Close()
				}
				if f, err = os.Open(path); err != nil {
					f = nil
				}
				off = 0
			}
		}
		read, err := drain()
		if err != nil {
			return err
		}
		if read {
			lastOutput = time.Now()
		}
		if !read && time.Since(partialSince) > 3*pollInterval {
			if err := idle(); err != nil {
				return err
			}
		}
		if !read && !m.isRunning(id) {
			return idle()
		}
		wait := pollInterval
		if time.Since(lastOutput) < fastPollFor {
			wait = fastPoll
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		case <-events:
		}
	}
}

// isRunning reports whether id may still write console output.
func (m *Manager) isRunning(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	mc, ok := m.machines[id]
	if !ok {
		return false
	}
	switch mc.State {
	case types.StateStarting, types.StateStarted, types.StateStopping:
		return true
	}
	return false
}

// splitLines splits b into lines, a line longer than MaxLogLine into
// pieces of that size.
func splitLines(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n := len(b)
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			n = i + 1
		}
		n = min(n, MaxLogLine)
		out = append(out, append([]byte(nil), b[:n]...))
		b = b[n:]
	}
	return out
}

// readTail reads at most the last limit bytes of the file at path.
func readTail(path string, limit int64) ([]byte, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	return readTailFile(f, limit)
}

// readTailFile reads at most the last limit bytes of f and returns them
// with the offset they end at. When it starts mid-file the partial first
// line is left out.
func readTailFile(f *os.File, limit int64) ([]byte, int64, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	end := st.Size()
	start := max(end-limit, 0)
	b := make([]byte, end-start)
	n, err := f.ReadAt(b, start)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, err
	}
	b = b[:n]
	if start > 0 {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return b, start + int64(n), nil
}
