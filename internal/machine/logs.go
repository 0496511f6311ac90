package machine

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"time"
)

// LogOptions select console output.
type LogOptions struct {
	Follow bool      // keep streaming while the machine runs
	Tail   int       // last N lines only; <= 0: everything
	Since  time.Time // skip rotated files last written before Since (console lines carry no time)
}

// pollInterval is how often a followed log is checked for new output.
const pollInterval = 20 * time.Millisecond

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
	hidden := func(line []byte) bool { return m.deps.HideLine != nil && m.deps.HideLine(line) }
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
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if p == path && opt.Follow {
			break // streamed below, so that nothing is read twice
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
		b, err := io.ReadAll(f)
		if err != nil {
			return err
		}
		off = int64(len(b))
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
	for {
		// Reopen on rotation (the file was renamed to .1 and recreated) or
		// when it appears.
		if st, err := os.Stat(path); err == nil {
			var fst os.FileInfo
			if f != nil {
				fst, _ = f.Stat()
			}
			if f == nil || fst == nil || !os.SameFile(st, fst) || st.Size() < off {
				if f != nil {
					f.Close()
				}
				if f, err = os.Open(path); err != nil {
					f = nil
				}
				off = 0
			}
		}
		read := false
		for f != nil {
			n, err := f.ReadAt(buf, off)
			if n > 0 {
				read = true
				off += int64(n)
				partial = append(partial, buf[:n]...)
				for {
					i := bytes.IndexByte(partial, '\n')
					if i < 0 {
						break
					}
					line := append([]byte(nil), partial[:i+1]...)
					partial = partial[i+1:]
					if err := emit(line); err != nil {
						return err
					}
				}
				partialSince = time.Now()
			}
			if err != nil || n == 0 {
				break
			}
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
	case StateStarting, StateStarted, StateStopping:
		return true
	}
	return false
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			return i + 1, data[:i+1], nil
		}
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	for sc.Scan() {
		out = append(out, append([]byte(nil), sc.Bytes()...))
	}
	return out
}
