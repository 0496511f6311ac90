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
)

// LogOptions select console output.
type LogOptions struct {
	Follow bool      // keep streaming while the machine runs
	Tail   int       // last N lines only; <= 0: everything
	Since  time.Time // skip rotated files last written before Since (console lines carry no time)
}

// pollInterval is how often a followed log is checked for new output.
const pollInterval = 20 * time.Millisecond

// MaxLogLine is the longest piece of a console line Logs hands out: a longer
// line (a guest writing without newlines) comes in pieces of this size, one
// after the other, so a reader never holds more.
const MaxLogLine = 64 << 10

// maxLogHistory is how much of the end of each console file Logs reads
// back (the console writer keeps a file far smaller; this bounds a file
// from elsewhere).
const maxLogHistory = 8 << 20

// Logs streams a machine's console (its entrypoint's output) to fn, one
// chunk at a time: whole lines, or a partial line once it has waited for its
// end for a moment (prompts). Lines that are ferry's own (the exit marker)
// are left out; "\r\n" becomes "\n" unless the machine has a TTY. With
// Follow it returns when the machine has stopped and its output is drained,
// or when ctx ends.
func (m *Manager) Logs(ctx context.Context, app, ref string, opt LogOptions, fn func([]byte) error) error {
	mc, err := m.Get(app, ref)
	if err != nil {
		return err
	}
	id, tty := mc.ID, mc.Config.Init.TTY
	path := filepath.Join(m.dir(id), "console.log")
	hidden := guest.PlatformLine
	visible := func(ls [][]byte) [][]byte {
		out := ls[:0]
		for _, l := range ls {
			if !hidden(l) {
				out = append(out, l)
			}
		}
		return out
	}
	emit := func(line []byte) error {
		if hidden(line) {
			return nil
		}
		if !tty && bytes.HasSuffix(line, []byte("\r\n")) {
			line = append(line[:len(line)-2:len(line)-2], '\n')
		}
		return fn(line)
	}

	// History: the rotated file, then the current one, as lines.
	var hist [][]byte
	for _, p := range []string{path + ".1", path} {
		if st, err := os.Stat(p); err != nil || (!opt.Since.IsZero() && st.ModTime().Before(opt.Since)) {
			continue
		}
		if p == path && opt.Follow {
			break // streamed below, so that nothing is read twice
		}
		b, _, err := readTail(p, maxLogHistory)
		if err != nil {
			continue
		}
		hist = append(hist, splitLines(b)...)
	}
	f, err := os.Open(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if f != nil {
		defer f.Close()
	}
	hist = visible(hist)
	if !opt.Follow {
		if opt.Tail > 0 && len(hist) > opt.Tail {
			hist = hist[len(hist)-opt.Tail:]
		}
		for _, l := range hist {
			if err := emit(l); err != nil {
				return err
			}
		}
		return nil
	}
	// Follow: the current file from its start (tail applied to what exists
	// now), then new output as it comes.
	var cur [][]byte
	var partial []byte
	var off int64
	if f != nil {
		b, end, err := readTailFile(f, maxLogHistory)
		if err != nil {
			return err
		}
		off = end
		cur = splitLines(b)
		if n := len(cur); n > 0 && !bytes.HasSuffix(cur[n-1], []byte("\n")) {
			partial, cur = cur[n-1], cur[:n-1]
		}
	}
	all := append(hist, visible(cur)...)
	if opt.Tail > 0 && len(all) > opt.Tail {
		all = all[len(all)-opt.Tail:]
	}
	for _, l := range all {
		if err := emit(l); err != nil {
			return err
		}
	}
	return m.follow(ctx, id, path, f, off, partial, emit)
}

// follow streams what is appended to path after off until the machine is
// no longer running and the file is drained.
func (m *Manager) follow(ctx context.Context, id, path string, f *os.File, off int64, partial []byte, emit func([]byte) error) error {
	events, cancel := m.Subscribe("", id)
	defer cancel()
	var partialSince time.Time
	buf := make([]byte, 64<<10)
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	// drain emits what f holds beyond off: whole lines, and pieces of
	// MaxLogLine of a longer one.
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
					if err := emit(line); err != nil {
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
		if len(partial) > 0 && !read && time.Since(partialSince) > 3*pollInterval {
			if err := emit(partial); err != nil {
				return err
			}
			partial = nil
		}
		if !read && !m.isRunning(id) {
			if len(partial) > 0 {
				return emit(partial)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
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
