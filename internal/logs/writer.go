package logs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ferryvm/ferry/internal/guest"
)

// maxPending is the most of one console line the writer holds waiting for
// its newline; more is written as a piece (a hostile guest cannot make it
// hold more).
const maxPending = 2 * guest.MaxRecordData

// idleFlush is how long an untagged piece without a newline (a prompt on a
// TTY) waits for the rest of its line before it is written as a piece.
const idleFlush = 50 * time.Millisecond

// Copy reads a machine's console from r until it ends and keeps it as
// entries in the store at path, stamped as they arrive, each file at most
// max bytes (rotated to path.1 … path.keep, the oldest dropped). A failing
// write (a full disk) drops those entries and is retried on a fresh file:
// r is always drained, so the writer never stalls the guest.
func Copy(r io.Reader, path string, max int64, keep int) error {
	w := &Writer{Path: path, Max: max, Keep: keep}
	defer w.Close()
	chunks := make(chan []byte)
	errc := make(chan error, 1)
	go func() {
		for {
			buf := make([]byte, 64<<10)
			n, err := r.Read(buf)
			if n > 0 {
				chunks <- buf[:n]
			}
			if err != nil {
				close(chunks)
				errc <- err
				return
			}
		}
	}()
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	for {
		select {
		case b, ok := <-chunks:
			if !ok {
				w.Flush(true)
				if err := <-errc; !errors.Is(err, io.EOF) {
					return err
				}
				return w.err
			}
			w.Write(b)
			if w.pendingUntagged() {
				idle.Reset(idleFlush)
			}
		case <-idle.C:
			w.Flush(false)
		}
	}
}

// Writer turns console bytes into store entries. Its methods are not safe
// for concurrent use.
type Writer struct {
	Path string
	Max  int64 // bytes per file; <= 0: unlimited
	Keep int   // rotated copies; < 1: 1
	Now  func() time.Time

	f       *os.File
	size    int64
	pending []byte // console bytes after the last newline
	line    []byte
	err     error // the last write error, for Copy's result
}

// Write takes console bytes: each whole line becomes an entry.
func (w *Writer) Write(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 || len(w.pending)+i+1 > maxPending {
			n := min(len(p), maxPending-len(w.pending))
			w.pending = append(w.pending, p[:n]...)
			p = p[n:]
			if len(w.pending) == maxPending {
				w.entry(w.pending)
				w.pending = w.pending[:0]
			}
			continue
		}
		if len(w.pending) > 0 {
			w.pending = append(w.pending, p[:i+1]...)
			w.entry(w.pending)
			w.pending = w.pending[:0]
		} else {
			w.entry(p[:i+1])
		}
		p = p[i+1:]
	}
}

// Flush writes the bytes waiting for a newline as a piece: at the end
// (all), or when they are untagged output that stopped (a prompt). A
// record's start waits for its end.
func (w *Writer) Flush(all bool) {
	if len(w.pending) > 0 && (all || w.pendingUntagged()) {
		w.entry(w.pending)
		w.pending = w.pending[:0]
	}
}

func (w *Writer) pendingUntagged() bool {
	return len(w.pending) > 0 && w.pending[0] != 0x1E
}

// Close closes the current file.
func (w *Writer) Close() {
	if w.f != nil {
		_ = w.f.Close()
		w.f = nil
	}
}

// entry stores one console line (or piece): a record with its stream, or
// an untagged line as the console's.
func (w *Writer) entry(raw []byte) {
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	e := Entry{Time: now(), Stream: Console, Data: raw, Partial: raw[len(raw)-1] != '\n'}
	if fd, partial, data, ok := guest.ParseRecord(raw); ok && !e.Partial {
		e.Stream, e.Partial, e.Data = Stdout, partial, data
		if fd == 2 {
			e.Stream = Stderr
		}
		if !partial {
			e.Data = raw[4:] // the data with the record's newline
		}
	}
	w.line = e.Append(w.line[:0])
	if w.Max > 0 && int64(len(w.line)) > w.Max {
		// A cap smaller than one entry: keep what fits of it.
		w.line = append(w.line[:w.Max-1], '\n')
	}
	w.write(w.line)
}

// write appends one encoded entry, rotating first when it would take the
// file past Max.
func (w *Writer) write(b []byte) {
	if w.f == nil {
		if err := w.open(); err != nil {
			w.err = err
			return // dropped
		}
	}
	if w.Max > 0 && w.size > 0 && w.size+int64(len(b)) > w.Max {
		w.Close()
		if err := rotate(w.Path, w.Keep); err != nil {
			w.err = err
			return // dropped rather than written past the cap
		}
		if err := w.open(); err != nil {
			w.err = err
			return
		}
	}
	n, err := w.f.Write(b)
	w.size += int64(n)
	if err != nil {
		w.err = err
		w.Close()
	}
}

func (w *Writer) open() error {
	f, err := os.OpenFile(w.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return err
	}
	w.f, w.size = f, st.Size()
	return nil
}

// rotate shifts path.(k-1) to path.k down to path → path.1.
func rotate(path string, keep int) error {
	keep = max(keep, 1)
	for i := keep; i > 1; i-- {
		_ = os.Rename(fmt.Sprintf("%s.%d", path, i-1), fmt.Sprintf("%s.%d", path, i))
	}
	if err := os.Rename(path, path+".1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("rotate %s: %w", path, err)
	}
	return nil
}
