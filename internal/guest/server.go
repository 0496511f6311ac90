package guest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
)

// Hello and ready lines start every session, in plain text so that a
// receiver can find them in whatever bytes an earlier session left behind:
//
//	host → guest: FERRY-HELLO <version> <nonce>\n
//	guest → host: FERRY-READY <version> <nonce>\n
//
// Frames follow on both sides.
const (
	helloWord = "FERRY-HELLO"
	readyWord = "FERRY-READY"
	maxLine   = 256
)

// Handler is what init implements to serve the control protocol.
type Handler interface {
	Status() Status
	// Wait blocks until the entrypoint has ended (or init failed).
	Wait(ctx context.Context) (ExitStatus, error)
	// Ack tells init that a host has received the exit status.
	Ack()
	// Signal delivers sig to the entrypoint.
	Signal(sig int) error
	// Exec starts a process. It is killed when ctx ends (the host
	// cancelled or disconnected).
	Exec(ctx context.Context, req ExecRequest, stdio ExecIO) (ExecProcess, error)
}

// ExecIO connects an exec'd process to its stream. Stdin is nil unless the
// request asked for it; Stderr is nil with a tty.
type ExecIO struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Events carries resizes (Rows, Cols) and signals from the host.
	Events <-chan ExecEvent
}

// ExecEvent is a tty resize (Rows and Cols set) or a signal.
type ExecEvent struct {
	Rows, Cols uint16
	Signal     int
}

// ExecProcess is a started exec.
type ExecProcess interface {
	PID() int
	// Wait returns once the process has exited and its output is written.
	Wait() ExitStatus
}

type serveOptions struct {
	wmu *sync.Mutex
}

// ServeOption configures Serve.
type ServeOption func(*serveOptions)

// WithWriteLock shares a write lock between successive Serve calls on one
// port, so a frame left half-written by an old session is finished before a
// new session writes.
func WithWriteLock(mu *sync.Mutex) ServeOption { return func(o *serveOptions) { o.wmu = mu } }

// Serve runs control sessions on one connection until it reads EOF or
// fails. Each session starts with the host's hello line; a host that
// reconnects mid-session (a new hello) starts a new one.
func Serve(ctx context.Context, rw io.ReadWriter, h Handler, opts ...ServeOption) error {
	o := serveOptions{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.wmu == nil {
		o.wmu = new(sync.Mutex)
	}
	br := bufio.NewReaderSize(rw, MaxPayload+headerSize)
	for {
		nonce, err := awaitLine(br, helloWord, "")
		if err != nil {
			return err
		}
		o.wmu.Lock()
		_, err = fmt.Fprintf(rw, "%s %d %s\n", readyWord, ProtocolVersion, nonce)
		o.wmu.Unlock()
		if err != nil {
			return err
		}
		m := newMux(rw, o.wmu, muxOptions{})
		m.onOpen = func(s *stream, payload []byte) { go serveStream(ctx, m, s, payload, h) }
		stop := context.AfterFunc(ctx, func() { m.close(ctx.Err()) })
		err = m.readLoop(br)
		stop()
		if !errors.Is(err, errDesync) {
			return err
		}
	}
}

// awaitLine skips input until a line holding "<word> <version> <nonce>"
// (with nonce = want when want is set) and returns the nonce.
func awaitLine(br *bufio.Reader, word, want string) (string, error) {
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return "", err
		}
		i := bytes.Index(line, []byte(word+" "))
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(line[i+len(word)+1:]))
		if len(fields) != 2 || len(fields[1]) > maxLine {
			continue
		}
		if v, err := strconv.Atoi(fields[0]); err != nil || v != ProtocolVersion {
			return "", fmt.Errorf("control protocol: peer speaks version %s, want %d", fields[0], ProtocolVersion)
		}
		if want == "" || fields[1] == want {
			return fields[1], nil
		}
	}
}

func serveStream(ctx context.Context, m *mux, s *stream, payload []byte, h Handler) {
	defer m.forget(s)
	defer s.finish(ErrClosed)
	// A handler bug must not take PID 1 (and so the guest kernel) down.
	defer func() {
		if r := recover(); r != nil {
			_ = m.sendJSON(frameReply, s.id, reply{Error: &RemoteError{Message: fmt.Sprintf("internal error: %v", r)}})
		}
	}()
	var req request
	if err := json.Unmarshal(payload, &req); err != nil {
		_ = m.sendJSON(frameReply, s.id, reply{Error: &RemoteError{Message: "bad request: " + err.Error()}})
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()

	var r reply
	switch req.Op {
	case "status":
		st := h.Status()
		r.Status = &st
	case "wait":
		ex, err := h.Wait(ctx)
		if err != nil {
			return // cancelled: the stream is gone
		}
		r.Exit = &ex
	case "ack":
		h.Ack()
	case "signal":
		if err := h.Signal(req.Signal); err != nil {
			r.Error = remoteError(err)
		}
	case "exec":
		if req.Exec == nil {
			r.Error = &RemoteError{Message: "exec: empty argv"}
			break
		}
		if err := req.Exec.Validate(); err != nil {
			r.Error = &RemoteError{Message: err.Error()}
			break
		}
		serveExec(ctx, m, s, *req.Exec, h)
		return
	case "warm":
		r.Error = serveWarm(req.Warm, m.takeWarmParts(), h)
	case "warm-part":
		r.Error = m.addWarmPart(req.Part)
	case "rehearse":
		r.Error = serveRehearse(req.Warm, m.takeWarmParts(), h)
	default:
		r.Error = &RemoteError{Message: fmt.Sprintf("unknown op %q", req.Op)}
	}
	_ = m.sendJSON(frameReply, s.id, r)
}

func serveExec(ctx context.Context, m *mux, s *stream, req ExecRequest, h Handler) {
	events := make(chan ExecEvent, 16)
	stdio := ExecIO{Stdout: s.writer(1), Events: events}
	if req.Stdin {
		stdio.Stdin = s.in[0]
	}
	if !req.TTY {
		stdio.Stderr = s.writer(2)
	}
	go func() {
		for {
			f, err := s.next(ctx)
			if err != nil {
				return
			}
			var c control
			if f.typ != frameControl || json.Unmarshal(f.payload, &c) != nil {
				continue
			}
			select {
			case events <- ExecEvent(c):
			default:
			}
		}
	}()
	p, err := h.Exec(ctx, req, stdio)
	if err != nil {
		_ = m.sendJSON(frameReply, s.id, reply{Error: remoteError(err)})
		return
	}
	if err := m.sendJSON(frameReply, s.id, reply{PID: p.PID()}); err != nil {
		return // the process dies with ctx
	}
	ex := p.Wait()
	_ = m.sendJSON(frameExit, s.id, ex)
}

func remoteError(err error) *RemoteError {
	var f *Failure
	if errors.As(err, &f) {
		return &RemoteError{Reason: f.Reason, Message: f.Message}
	}
	return &RemoteError{Message: err.Error()}
}
