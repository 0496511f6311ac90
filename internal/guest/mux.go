package guest

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"sync"
)

// window is the flow-control window of every stdio stream: a sender never
// has more than this many unacknowledged bytes in flight per stream, so one
// stalled reader cannot block the other streams sharing the connection.
const window = 256 << 10

// ErrClosed is returned for calls on a connection that has ended.
var ErrClosed = errors.New("control connection closed")

// mux multiplexes streams over one connection. The same code runs on both
// ends; the guest sets onOpen to accept streams.
type mux struct {
	w   io.Writer
	wmu *sync.Mutex // may be shared by successive sessions on one port

	mu      sync.Mutex
	streams map[uint32]*stream
	nextID  uint32
	err     error
	done    chan struct{}
	onOpen  func(s *stream, payload []byte)
}

func newMux(w io.Writer, wmu *sync.Mutex) *mux {
	if wmu == nil {
		wmu = new(sync.Mutex)
	}
	return &mux{w: w, wmu: wmu, streams: map[uint32]*stream{}, nextID: 1, done: make(chan struct{})}
}

// send writes one frame atomically with respect to other frames.
func (m *mux) send(f frame) error {
	select {
	case <-m.done:
		return m.closedErr()
	default:
	}
	buf := appendFrame(make([]byte, 0, headerSize+len(f.payload)), f)
	m.wmu.Lock()
	_, err := m.w.Write(buf)
	m.wmu.Unlock()
	if err != nil {
		m.close(err)
		return m.closedErr()
	}
	return nil
}

func (m *mux) sendJSON(typ frameType, id uint32, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return m.send(frame{typ: typ, stream: id, payload: b})
}

func (m *mux) closedErr() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err == nil || errors.Is(m.err, io.EOF) {
		return ErrClosed
	}
	return errors.Join(ErrClosed, m.err)
}

// close ends the connection and every stream on it.
func (m *mux) close(err error) {
	m.mu.Lock()
	if m.err != nil {
		m.mu.Unlock()
		return
	}
	if err == nil {
		err = io.EOF
	}
	m.err = err
	streams := m.streams
	m.streams = map[uint32]*stream{}
	close(m.done)
	m.mu.Unlock()
	for _, s := range streams {
		s.finish(ErrClosed)
	}
}

// newStream registers a stream; id 0 allocates the next client id.
func (m *mux) newStream(id uint32) (*stream, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return nil, ErrClosed
	}
	if id == 0 {
		id = m.nextID
		m.nextID += 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &stream{m: m, id: id, ctrl: make(chan frame, 64), done: make(chan struct{}), ctx: ctx, cancel: cancel}
	for fd := range s.in {
		s.in[fd] = newInbuf(func(n int) {
			_ = m.send(frame{typ: frameWindow, stream: id, payload: binary.BigEndian.AppendUint32([]byte{byte(fd)}, uint32(n))})
		})
		s.out[fd] = &credit{n: window}
		s.out[fd].cond = sync.NewCond(&s.out[fd].mu)
	}
	m.streams[id] = s
	return s, nil
}

func (m *mux) forget(s *stream) {
	m.mu.Lock()
	if m.streams[s.id] == s {
		delete(m.streams, s.id)
	}
	m.mu.Unlock()
}

// readLoop dispatches frames until the connection fails.
func (m *mux) readLoop(r *bufio.Reader) error {
	for {
		f, err := readFrame(r)
		if err != nil {
			m.close(err)
			return err
		}
		m.dispatch(f)
	}
}

func (m *mux) dispatch(f frame) {
	m.mu.Lock()
	s := m.streams[f.stream]
	m.mu.Unlock()
	if s == nil {
		if f.typ == frameOpen && m.onOpen != nil && f.stream%2 == 1 {
			if s, err := m.newStream(f.stream); err == nil {
				m.onOpen(s, f.payload)
			}
		}
		return // late frames of a finished stream
	}
	switch f.typ {
	case frameData:
		if fd, ok := fdOf(f.payload); ok && len(f.payload) > 1 {
			s.in[fd].push(f.payload[1:])
		}
	case frameEOF:
		if fd, ok := fdOf(f.payload); ok {
			s.in[fd].close(io.EOF)
		}
	case frameWindow:
		if fd, ok := fdOf(f.payload); ok && len(f.payload) == 5 {
			s.out[fd].add(int(binary.BigEndian.Uint32(f.payload[1:])))
		}
	case frameCancel:
		m.forget(s)
		s.finish(context.Canceled)
	default: // open (duplicate), reply, control, exit
		select {
		case s.ctrl <- f:
		default: // a peer flooding control frames loses some
		}
	}
}

func fdOf(p []byte) (int, bool) {
	if len(p) == 0 || p[0] > 2 {
		return 0, false
	}
	return int(p[0]), true
}

// stream is one request (and, for exec, its stdio) on a connection.
type stream struct {
	m      *mux
	id     uint32
	ctrl   chan frame
	in     [3]*inbuf  // received stdio, by fd
	out    [3]*credit // send window, by fd
	done   chan struct{}
	once   sync.Once
	ctx    context.Context // canceled when the stream ends
	cancel context.CancelFunc
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

// next returns the next control frame (reply, exit, control).
func (s *stream) next(ctx context.Context) (frame, error) {
	select {
	case f := <-s.ctrl:
		return f, nil
	default:
	}
	select {
	case f := <-s.ctrl:
		return f, nil
	case <-s.done:
		select {
		case f := <-s.ctrl:
			return f, nil
		default:
		}
		return frame{}, s.m.closedErrOr(context.Canceled)
	case <-ctx.Done():
		return frame{}, ctx.Err()
	}
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

// inbuf buffers received stdio bytes and acknowledges them as they are read.
type inbuf struct {
	mu      sync.Mutex
	cond    *sync.Cond
	buf     []byte
	err     error // set once no more data will come
	unacked int
	ack     func(n int)
}

func newInbuf(ack func(int)) *inbuf {
	b := &inbuf{ack: ack}
	b.cond = sync.NewCond(&b.mu)
	return b
}

func (b *inbuf) push(p []byte) {
	b.mu.Lock()
	if b.err == nil {
		b.buf = append(b.buf, p...)
		b.cond.Broadcast()
	}
	b.mu.Unlock()
}

func (b *inbuf) close(err error) {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
		b.cond.Broadcast()
	}
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
