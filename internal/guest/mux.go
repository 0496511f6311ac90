package guest

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// ErrClosed is returned for calls on a connection that has ended.
var ErrClosed = errors.New("control connection closed")

// mux multiplexes streams over one connection. The same code runs on both
// ends; the guest sets onOpen to accept streams.
type mux struct {
	w    io.Writer
	wmu  *sync.Mutex // may be shared by successive sessions on one port
	opts muxOptions

	mu         sync.Mutex
	streams    map[uint32]*stream
	nextID     uint32
	err        error
	done       chan struct{}
	onOpen     func(s *stream, payload []byte)
	violations int
	warmParts  []byte // a warm config's run config received in parts (warm.go)

	// buffered is what the connection holds for its readers: received
	// stdio bytes not yet read and queued control frames. The receive-side
	// limits keep it under a window per fd plus maxCtrlFrames frames per
	// open stream, whatever the peer sends.
	buffered atomic.Int64
	peak     atomic.Int64 // the most buffered ever held (tests assert it)
}

// hold adds n (negative: releases) to what the connection buffers.
func (m *mux) hold(n int) {
	v := m.buffered.Add(int64(n))
	for p := m.peak.Load(); v > p && !m.peak.CompareAndSwap(p, v); p = m.peak.Load() {
	}
}

func newMux(w io.Writer, wmu *sync.Mutex, opts muxOptions) *mux {
	if wmu == nil {
		wmu = new(sync.Mutex)
	}
	return &mux{w: w, wmu: wmu, opts: opts, streams: map[uint32]*stream{}, nextID: 1, done: make(chan struct{})}
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
	s := &stream{m: m, id: id, ctrl: make(chan frame, maxCtrlFrames), done: make(chan struct{}), ctx: ctx, cancel: cancel}
	for fd := range s.in {
		s.in[fd] = newInbuf(m.hold, func(n int) {
			_ = m.send(frame{typ: frameWindow, stream: id, payload: binary.BigEndian.AppendUint32([]byte{byte(fd)}, uint32(n))})
		})
		s.out[fd] = &credit{n: window}
		s.out[fd].cond = sync.NewCond(&s.out[fd].mu)
	}
	m.streams[id] = s
	return s, nil
}

// forget unregisters s and drops its queued control frames.
func (m *mux) forget(s *stream) {
	m.mu.Lock()
	m.forgetLocked(s)
	m.mu.Unlock()
}

func (m *mux) forgetLocked(s *stream) {
	if m.streams[s.id] != s {
		return
	}
	delete(m.streams, s.id)
	for {
		select {
		case f := <-s.ctrl:
			m.hold(-len(f.payload))
		default:
			return
		}
	}
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

// Which stdio fds carry data towards each side, and which send windows
// (credit for data the other way) it takes: the client (host) receives
// stdout and stderr and sends stdin; the server (init) the reverse.
func (m *mux) receives(fd int) bool { return (fd == 0) == (m.onOpen != nil) }

func (m *mux) dispatch(f frame) {
	m.mu.Lock()
	s := m.streams[f.stream]
	if s == nil {
		full := len(m.streams) >= maxStreams
		m.mu.Unlock()
		if f.typ == frameOpen && m.onOpen != nil && f.stream%2 == 1 {
			m.accept(f, full)
		}
		return // late frames of a finished stream
	}
	switch f.typ {
	case frameData, frameEOF, frameWindow, frameCancel:
		m.mu.Unlock()
	default: // reply, exit, control, open: queued under mu, so forget drops them all
		if m.onOpen == nil {
			// A guest answers a stream with one reply and, for exec,
			// one exit, nothing else.
			s.answers[f.typ]++
			if (f.typ != frameReply && f.typ != frameExit) || s.answers[f.typ] > 1 {
				m.mu.Unlock()
				m.violate(s, "unexpected %s frame (#%d)", f.typ, s.answers[f.typ])
				return
			}
		}
		select {
		case s.ctrl <- f:
			m.hold(len(f.payload))
		default: // a host's resizes that init cannot keep up with are dropped
		}
		m.mu.Unlock()
		return
	}
	fd, fdOK := fdOf(f.payload)
	switch f.typ {
	case frameData:
		if !fdOK || !m.receives(fd) {
			m.violate(s, "a data frame for an fd this side does not read")
			return
		}
		if err := s.in[fd].push(f.payload[1:]); err != nil {
			m.violate(s, "fd %d: %v", fd, err)
		}
	case frameEOF:
		if fdOK && m.receives(fd) {
			s.in[fd].close(io.EOF)
		}
	case frameWindow:
		if fdOK && !m.receives(fd) && len(f.payload) == 5 {
			s.out[fd].add(int(binary.BigEndian.Uint32(f.payload[1:])))
		}
	case frameCancel:
		m.forget(s)
		s.finish(context.Canceled)
	}
}

// accept starts a stream the peer opened, unless it already has
// maxStreams open.
func (m *mux) accept(f frame, full bool) {
	if full {
		go func() {
			_ = m.sendJSON(frameReply, f.stream, reply{Error: &RemoteError{Message: "too many open streams"}})
		}()
		return
	}
	if s, err := m.newStream(f.stream); err == nil {
		m.onOpen(s, f.payload)
	}
}

func fdOf(p []byte) (int, bool) {
	if len(p) == 0 || p[0] > 2 {
		return 0, false
	}
	return int(p[0]), true
}
