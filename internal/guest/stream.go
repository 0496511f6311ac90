package guest

import (
	"context"
	"fmt"
	"io"
	"sync"
)

// stream is one request (and, for exec, its stdio) on a connection.
type stream struct {
	m    *mux
	id   uint32
	ctrl chan frame
	in   [3]*inbuf  // received stdio, by fd
	out  [3]*credit // send window, by fd
	// answers counts the control frames a client received, by type
	// (guarded by the mux's mu).
	answers [frameMax]int
	done    chan struct{}
	once    sync.Once
	err     error           // why it ended early (a violation), set before done closes
	ctx     context.Context // canceled when the stream ends
	cancel  context.CancelFunc
}

// finish ends the stream locally: readers see err after buffered data.
func (s *stream) finish(err error) {
	s.once.Do(func() {
		for fd := range s.in {
			s.in[fd].close(err)
			s.out[fd].close()
		}
		s.cancel()
		close(s.done)
	})
}

// abort ends the stream because of err: buffered input is dropped and
// every reader and waiter gets err.
func (s *stream) abort(err error) {
	s.once.Do(func() {
		s.err = err
		for fd := range s.in {
			s.in[fd].drop(err)
			s.out[fd].close()
		}
		s.cancel()
		close(s.done)
	})
}

// next returns the next control frame (reply, exit, control).
func (s *stream) next(ctx context.Context) (frame, error) {
	select {
	case f := <-s.ctrl:
		return s.took(f), nil
	default:
	}
	select {
	case f := <-s.ctrl:
		return s.took(f), nil
	case <-s.done:
		select {
		case f := <-s.ctrl:
			return s.took(f), nil
		default:
		}
		if s.err != nil {
			return frame{}, s.err
		}
		return frame{}, s.m.closedErrOr(context.Canceled)
	case <-ctx.Done():
		return frame{}, ctx.Err()
	}
}

func (s *stream) took(f frame) frame {
	s.m.hold(-len(f.payload))
	return f
}

func (m *mux) closedErrOr(err error) error {
	select {
	case <-m.done:
		return m.closedErr()
	default:
		return err
	}
}

// writer returns an io.Writer sending on fd, honouring the peer's window.
func (s *stream) writer(fd int) io.Writer { return streamWriter{s, fd} }

type streamWriter struct {
	s  *stream
	fd int
}

func (w streamWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		k, err := w.s.out[w.fd].take(min(len(p), maxDataSize))
		if err != nil {
			return written, err
		}
		payload := append([]byte{byte(w.fd)}, p[:k]...)
		if err := w.s.m.send(frame{typ: frameData, stream: w.s.id, payload: payload}); err != nil {
			return written, err
		}
		p, written = p[k:], written+k
	}
	return written, nil
}

// inbuf buffers received stdio bytes and acknowledges them as they are
// read. It holds at most window bytes: what the peer may have in flight is
// what is buffered plus what was read and not yet acknowledged, and more
// than that is refused.
type inbuf struct {
	mu      sync.Mutex
	cond    *sync.Cond
	buf     []byte
	err     error // set once no more data will come
	unacked int
	ack     func(n int)
	hold    func(n int) // the connection's total, kept in step with buf
}

func newInbuf(hold func(int), ack func(int)) *inbuf {
	b := &inbuf{ack: ack, hold: hold}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// push appends p, or fails when that would exceed the window.
func (b *inbuf) push(p []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return nil // the reader is gone: nothing is kept
	}
	if inflight := len(b.buf) + b.unacked + len(p); inflight > window {
		return fmt.Errorf("%d bytes in flight, beyond the %d-byte window", inflight, window)
	}
	b.buf = append(b.buf, p...)
	b.hold(len(p))
	b.cond.Broadcast()
	return nil
}

func (b *inbuf) close(err error) {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
		b.cond.Broadcast()
	}
	b.mu.Unlock()
}

// drop ends the buffer with err, discarding what it holds.
func (b *inbuf) drop(err error) {
	b.mu.Lock()
	b.hold(-len(b.buf))
	b.buf = nil
	b.err = err
	b.cond.Broadcast()
	b.mu.Unlock()
}

func (b *inbuf) Read(p []byte) (int, error) {
	b.mu.Lock()
	for len(b.buf) == 0 && b.err == nil {
		b.cond.Wait()
	}
	if len(b.buf) == 0 {
		err := b.err
		b.mu.Unlock()
		return 0, err
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	b.hold(-n)
	if len(b.buf) == 0 {
		b.buf = nil
	}
	b.unacked += n
	ack := 0
	if b.unacked >= window/4 || (len(b.buf) == 0 && b.unacked > 0) {
		ack, b.unacked = b.unacked, 0
	}
	b.mu.Unlock()
	if ack > 0 {
		b.ack(ack)
	}
	return n, nil
}

// credit is the number of bytes the peer lets us send on one stdio stream.
type credit struct {
	mu     sync.Mutex
	cond   *sync.Cond
	n      int
	closed bool
}

func (c *credit) take(max int) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.n == 0 && !c.closed {
		c.cond.Wait()
	}
	if c.closed {
		return 0, ErrClosed
	}
	k := min(c.n, max)
	c.n -= k
	return k, nil
}

func (c *credit) add(k int) {
	c.mu.Lock()
	if c.n+k <= 4*window { // ignore absurd grants
		c.n += k
	}
	c.cond.Broadcast()
	c.mu.Unlock()
}

func (c *credit) close() {
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
}
