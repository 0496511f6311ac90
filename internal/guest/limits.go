package guest

import (
	"errors"
	"fmt"
	"log/slog"
)

// What one side of a control connection lets its peer make it hold. The
// receiver enforces every limit itself: a peer that ignores them (a guest
// runs user code as root, so the host treats it as hostile) has the
// offending stream closed, and after maxViolations the connection.
const (
	// window is the flow-control window of every stdio stream: a sender
	// never has more than this many unacknowledged bytes in flight per
	// stream and fd, so one stalled reader cannot block the other streams
	// sharing the connection, and a receiver never buffers more.
	window = 256 << 10
	// maxCtrlFrames is how many control frames (reply, exit, resize,
	// signal) a stream queues for its reader.
	maxCtrlFrames = 16
	// maxStreams is how many streams a peer may have open on the serving
	// side at once.
	maxStreams = 256
	// maxViolations closes the connection after this many violations.
	maxViolations = 3
)

// ErrViolation is wrapped by the error of a stream (or connection) that
// was closed because the peer broke the protocol: more data than its
// window, a frame that direction never carries, a flood of control frames.
var ErrViolation = errors.New("control protocol violation")

// ClientOption configures NewClient and Dial.
type ClientOption func(*muxOptions)

type muxOptions struct {
	log         *slog.Logger
	onViolation func(error)
}

// WithLogger logs protocol violations at Warn on log (the caller adds the
// machine's id).
func WithLogger(log *slog.Logger) ClientOption { return func(o *muxOptions) { o.log = log } }

// WithViolationFunc calls fn (from the connection's reader: it must not
// block) for every protocol violation, so the caller can record it.
func WithViolationFunc(fn func(error)) ClientOption {
	return func(o *muxOptions) { o.onViolation = fn }
}

// violate records that the peer broke the protocol on s: the stream ends
// with an ErrViolation (its buffered input is dropped, a guest-side
// process is killed), the peer is told to cancel it, and a peer that keeps
// doing it loses the connection.
func (m *mux) violate(s *stream, format string, args ...any) {
	err := fmt.Errorf("%w: stream %d: %s", ErrViolation, s.id, fmt.Sprintf(format, args...))
	m.mu.Lock()
	m.violations++
	n := m.violations
	m.forgetLocked(s)
	m.mu.Unlock()
	if m.opts.log != nil {
		m.opts.log.Warn("guest control channel: protocol violation, stream closed", "stream", s.id, "violations", n, "err", err)
	}
	if m.opts.onViolation != nil {
		m.opts.onViolation(err)
	}
	s.abort(err)
	if m.onOpen == nil {
		// The client tells the guest to give the stream up (it kills the
		// process); never from the reader itself, which must keep reading.
		go func() { _ = m.send(frame{typ: frameCancel, stream: s.id}) }()
	}
	if n >= maxViolations {
		if m.opts.log != nil {
			m.opts.log.Warn("guest control channel: closed after repeated protocol violations", "violations", n)
		}
		m.close(fmt.Errorf("%d violations, last: %w", n, err))
	}
}
