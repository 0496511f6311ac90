package guest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Client is the host end of a control connection. It is safe for concurrent
// use; every call is its own stream.
type Client struct {
	conn io.ReadWriteCloser
	m    *mux
}

// Dial connects to a machine's control socket. With vsockPort 0 the socket
// is QEMU's virtio-serial chardev; otherwise it is Firecracker's vsock unix
// socket and Dial first asks for the port ("CONNECT <port>\n" → "OK ...").
// ctx bounds the connection set-up only.
func Dial(ctx context.Context, socketPath string, vsockPort uint32, opts ...ClientOption) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socketPath)
	if err != nil {
		return nil, fmt.Errorf("dial control socket: %w", err)
	}
	if vsockPort != 0 {
		if err := vsockConnect(ctx, conn, vsockPort); err != nil {
			_ = conn.Close()
			return nil, err
		}
	}
	return NewClient(ctx, conn, opts...)
}

// vsockConnect performs Firecracker's hybrid-vsock handshake. It reads the
// reply byte by byte so no protocol bytes are consumed.
func vsockConnect(ctx context.Context, conn net.Conn, port uint32) error {
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
		defer func() { _ = conn.SetDeadline(time.Time{}) }()
	}
	if _, err := fmt.Fprintf(conn, "CONNECT %d\n", port); err != nil {
		return fmt.Errorf("vsock connect: %w", err)
	}
	var line []byte
	b := make([]byte, 1)
	for len(line) < maxLine {
		if _, err := io.ReadFull(conn, b); err != nil {
			return fmt.Errorf("vsock connect to port %d: %w", port, err)
		}
		if b[0] == '\n' {
			break
		}
		line = append(line, b[0])
	}
	if !strings.HasPrefix(string(line), "OK ") {
		return fmt.Errorf("vsock connect to port %d: got %q", port, line)
	}
	return nil
}

// NewClient starts a control session on conn (a connected stream). It sends
// the hello line and waits for the guest's ready line, skipping whatever an
// earlier session left in the channel. ctx bounds this handshake; init
// answers once it has mounted /dev, within a few hundred milliseconds of
// boot. The client owns conn from then on.
//
// The client holds at most a flow-control window (256 KiB) per stdio fd and
// a few control frames per open stream, whatever the guest sends: a guest
// that sends more has that stream closed with an ErrViolation (and after
// repeated violations the connection); WithLogger and WithViolationFunc
// report each one.
func NewClient(ctx context.Context, conn io.ReadWriteCloser, opts ...ClientOption) (*Client, error) {
	var o muxOptions
	for _, opt := range opts {
		opt(&o)
	}
	// The nonce only tells this session's ready line from a stale one.
	nonce := strconv.FormatUint(rand.Uint64(), 16) //nolint:gosec // G404: a session tag, not a secret; the channel is already private to the host
	if _, err := fmt.Fprintf(conn, "%s %d %s\n", helloWord, ProtocolVersion, nonce); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("control hello: %w", err)
	}
	br := bufio.NewReaderSize(conn, MaxPayload+headerSize)
	var hsErr error
	done := make(chan struct{})
	go func() {
		_, hsErr = awaitLine(br, readyWord, nonce)
		close(done)
	}()
	select {
	case <-done:
		if hsErr != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("control handshake: %w", hsErr)
		}
	case <-ctx.Done():
		_ = conn.Close()
		<-done // the reader fails on the closed conn; ctx's error says why
		return nil, fmt.Errorf("control handshake: %w", ctx.Err())
	}
	c := &Client{conn: conn, m: newMux(conn, nil, o)}
	go func() { _ = c.m.readLoop(br) }()
	return c, nil
}

// Close ends the session. The guest keeps running.
func (c *Client) Close() error {
	c.m.close(ErrClosed)
	return c.conn.Close()
}

// Done is closed when the connection has ended (the guest powered off, or
// the socket was closed).
func (c *Client) Done() <-chan struct{} { return c.m.done }

// call sends one request and waits for its reply.
func (c *Client) call(ctx context.Context, req request) (reply, error) {
	s, err := c.m.newStream(0)
	if err != nil {
		return reply{}, err
	}
	defer c.m.forget(s)
	if err := c.m.sendJSON(frameOpen, s.id, req); err != nil {
		return reply{}, err
	}
	f, err := s.next(ctx)
	if err != nil {
		if ctx.Err() != nil {
			_ = c.m.send(frame{typ: frameCancel, stream: s.id})
		}
		return reply{}, fmt.Errorf("control %s: %w", req.Op, err)
	}
	var r reply
	if err := json.Unmarshal(f.payload, &r); err != nil {
		return reply{}, fmt.Errorf("control %s: bad reply: %w", req.Op, err)
	}
	if r.Error != nil {
		return r, fmt.Errorf("control %s: %w", req.Op, r.Error)
	}
	return r, nil
}

// Status returns init's view of the machine.
func (c *Client) Status(ctx context.Context) (Status, error) {
	r, err := c.call(ctx, request{Op: "status"})
	if err != nil {
		return Status{}, err
	}
	if r.Status == nil {
		return Status{}, errors.New("control status: empty reply")
	}
	return *r.Status, nil
}

// Wait blocks until the entrypoint ends and returns its status (a failure to
// start it is a status too: Failure is set). It acknowledges the status, so
// init may power off right after.
func (c *Client) Wait(ctx context.Context) (ExitStatus, error) {
	r, err := c.call(ctx, request{Op: "wait"})
	if err != nil {
		return ExitStatus{}, err
	}
	if r.Exit == nil {
		return ExitStatus{}, errors.New("control wait: empty reply")
	}
	_, _ = c.call(ctx, request{Op: "ack"})
	return *r.Exit, nil
}

// Signal delivers sig to the entrypoint.
func (c *Client) Signal(ctx context.Context, sig syscall.Signal) error {
	_, err := c.call(ctx, request{Op: "signal", Signal: int(sig)})
	return err
}

// Process is a process started with Exec. Read Stdout and Stderr while
// waiting: output is flow-controlled, so an unread stream stalls the process.
type Process struct {
	PID    int
	Stdout io.Reader // with a tty, all output
	Stderr io.Reader // empty with a tty
	c      *Client
	s      *stream
}

// Exec starts a process in the guest. ctx bounds the start only; the
// process lives until it exits or Close is called.
func (c *Client) Exec(ctx context.Context, req ExecRequest) (*Process, error) {
	s, err := c.m.newStream(0)
	if err != nil {
		return nil, err
	}
	if err := c.m.sendJSON(frameOpen, s.id, request{Op: "exec", Exec: &req}); err != nil {
		c.m.forget(s)
		return nil, err
	}
	p := &Process{Stdout: s.in[1], Stderr: s.in[2], c: c, s: s}
	f, err := s.next(ctx)
	if err == nil && f.typ != frameReply {
		err = fmt.Errorf("unexpected %s frame", f.typ)
	}
	var r reply
	if err == nil {
		err = json.Unmarshal(f.payload, &r)
	}
	if err == nil && r.Error != nil {
		err = r.Error
	}
	if err != nil {
		_ = p.Close()
		what := strings.Join(req.Argv, " ")
		if req.Entrypoint {
			what = "(attach to the entrypoint)"
		}
		return nil, fmt.Errorf("exec %s: %w", what, err)
	}
	p.PID = r.PID
	return p, nil
}

// Stdin returns the process's stdin (only meaningful with ExecRequest.Stdin);
// closing it sends EOF.
func (p *Process) Stdin() io.WriteCloser { return stdinWriter{p.s} }

type stdinWriter struct{ s *stream }

func (w stdinWriter) Write(b []byte) (int, error) { return w.s.writer(0).Write(b) }
func (w stdinWriter) Close() error {
	return w.s.m.send(frame{typ: frameEOF, stream: w.s.id, payload: []byte{0}})
}

// Resize sets the tty size of a tty process.
func (p *Process) Resize(rows, cols uint16) error {
	return p.c.m.sendJSON(frameControl, p.s.id, control{Rows: rows, Cols: cols})
}

// Signal delivers sig to the process.
func (p *Process) Signal(sig syscall.Signal) error {
	return p.c.m.sendJSON(frameControl, p.s.id, control{Signal: int(sig)})
}

// Wait returns the exit status once the process has ended; its output is
// then fully buffered in Stdout and Stderr.
func (p *Process) Wait(ctx context.Context) (ExitStatus, error) {
	for {
		f, err := p.s.next(ctx)
		if err != nil {
			return ExitStatus{}, fmt.Errorf("exec wait: %w", err)
		}
		if f.typ != frameExit {
			continue
		}
		var ex ExitStatus
		if err := json.Unmarshal(f.payload, &ex); err != nil {
			return ExitStatus{}, fmt.Errorf("exec wait: %w", err)
		}
		for fd := range p.s.in {
			p.s.in[fd].close(io.EOF)
		}
		p.c.m.forget(p.s)
		return ex, nil
	}
}

// Close abandons the process: the guest kills it.
func (p *Process) Close() error {
	p.c.m.forget(p.s)
	err := p.c.m.send(frame{typ: frameCancel, stream: p.s.id})
	p.s.finish(context.Canceled)
	return err
}
