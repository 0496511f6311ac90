package guest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeHandler stands in for init.
type fakeHandler struct {
	mu      sync.Mutex
	signals []int
	acked   bool
	exited  chan struct{}
	exit    ExitStatus
}

func (h *fakeHandler) Status() Status {
	return Status{State: StateRunning, PID: 42, Protocol: ProtocolVersion}
}

func (h *fakeHandler) Wait(ctx context.Context) (ExitStatus, error) {
	select {
	case <-h.exited:
		return h.exit, nil
	case <-ctx.Done():
		return ExitStatus{}, ctx.Err()
	}
}

func (h *fakeHandler) Ack() { h.mu.Lock(); h.acked = true; h.mu.Unlock() }

func (h *fakeHandler) Signal(sig int) error {
	if sig == 0 {
		return &Failure{Reason: ReasonInit, Message: "no entrypoint"}
	}
	h.mu.Lock()
	h.signals = append(h.signals, sig)
	h.mu.Unlock()
	return nil
}

type fakeProc struct {
	done chan ExitStatus
}

func (p *fakeProc) PID() int         { return 7 }
func (p *fakeProc) Wait() ExitStatus { return <-p.done }

// Exec runs a tiny fake program: "upper" copies stdin to stdout upper-cased,
// "big N" writes N bytes, "sleep" waits for a signal or cancellation.
func (h *fakeHandler) Exec(ctx context.Context, req ExecRequest, stdio ExecIO) (ExecProcess, error) {
	if req.Argv[0] == "missing" {
		return nil, &Failure{Reason: ReasonNotFound, Message: "missing: not found"}
	}
	p := &fakeProc{done: make(chan ExitStatus, 1)}
	go func() {
		switch req.Argv[0] {
		case "upper":
			b, _ := io.ReadAll(stdio.Stdin)
			stdio.Stdout.Write(bytes.ToUpper(b))
			if stdio.Stderr != nil {
				fmt.Fprint(stdio.Stderr, "done")
			}
			p.done <- ExitStatus{Code: 3}
		case "big":
			var n int
			fmt.Sscan(req.Argv[1], &n)
			stdio.Stdout.Write(bytes.Repeat([]byte("z"), n))
			p.done <- ExitStatus{}
		case "sleep":
			for {
				select {
				case ev := <-stdio.Events:
					if ev.Signal != 0 {
						p.done <- ExitStatus{Code: 128 + ev.Signal, Signal: ev.Signal}
						return
					}
					fmt.Fprintf(stdio.Stdout, "size %dx%d\n", ev.Rows, ev.Cols)
				case <-ctx.Done():
					p.done <- ExitStatus{Code: 137, Signal: 9}
					return
				}
			}
		}
	}()
	return p, nil
}

func startPair(t *testing.T, h Handler) *Client {
	t.Helper()
	hostEnd, guestEnd := net.Pipe()
	go Serve(t.Context(), guestEnd, h)
	t.Cleanup(func() { guestEnd.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	c, err := NewClient(ctx, hostEnd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestStatusSignalWait(t *testing.T) {
	h := &fakeHandler{exited: make(chan struct{}), exit: ExitStatus{Code: 7}}
	c := startPair(t, h)
	ctx := t.Context()
	st, err := c.Status(ctx)
	if err != nil || st.State != StateRunning || st.PID != 42 {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	if err := c.Signal(ctx, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = c.Signal(ctx, 0)
	var re *RemoteError
	if err == nil || !errors.As(err, &re) || re.Reason != ReasonInit {
		t.Fatalf("Signal(0) = %v, want a remote init_failed", err)
	}
	// A cancelled wait does not break the connection.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = c.Wait(short)
	cancel()
	if err == nil {
		t.Fatal("Wait returned before exit")
	}
	close(h.exited)
	ex, err := c.Wait(ctx)
	if err != nil || ex.Code != 7 {
		t.Fatalf("Wait = %+v, %v", ex, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.signals) != 1 || h.signals[0] != int(syscall.SIGTERM) || !h.acked {
		t.Fatalf("signals %v acked %v", h.signals, h.acked)
	}
}

func TestExecStreams(t *testing.T) {
	c := startPair(t, &fakeHandler{exited: make(chan struct{})})
	ctx := t.Context()
	p, err := c.Exec(ctx, ExecRequest{Argv: []string{"upper"}, Stdin: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.PID != 7 {
		t.Fatalf("pid %d", p.PID)
	}
	in := strings.Repeat("hello ", 100000) // larger than the window
	go func() {
		io.WriteString(p.Stdin(), in)
		p.Stdin().Close()
	}()
	var out, errb []byte
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { out, _ = io.ReadAll(p.Stdout); wg.Done() }()
	go func() { errb, _ = io.ReadAll(p.Stderr); wg.Done() }()
	ex, err := p.Wait(ctx)
	if err != nil || ex.Code != 3 {
		t.Fatalf("Wait = %+v, %v", ex, err)
	}
	wg.Wait()
	if string(out) != strings.ToUpper(in) || string(errb) != "done" {
		t.Fatalf("stdout %d bytes (want %d), stderr %q", len(out), len(in), errb)
	}
}

func TestExecFlowControl(t *testing.T) {
	c := startPair(t, &fakeHandler{exited: make(chan struct{})})
	ctx := t.Context()
	// Two processes: one whose large output is not read yet must not block
	// the other.
	big, err := c.Exec(ctx, ExecRequest{Argv: []string{"big", "2000000"}})
	if err != nil {
		t.Fatal(err)
	}
	small, err := c.Exec(ctx, ExecRequest{Argv: []string{"big", "10"}})
	if err != nil {
		t.Fatal(err)
	}
	if ex, err := small.Wait(ctx); err != nil || ex.Code != 0 {
		t.Fatalf("small: %+v %v", ex, err)
	}
	if _, err := c.Status(ctx); err != nil {
		t.Fatalf("status while a stream is stalled: %v", err)
	}
	n, _ := io.Copy(io.Discard, readUntilExit(ctx, t, big))
	if n != 2000000 {
		t.Fatalf("big: read %d bytes", n)
	}
}

func readUntilExit(ctx context.Context, t *testing.T, p *Process) io.Reader {
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&buf, p.Stdout); close(done) }()
	if _, err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	<-done
	return &buf
}

func TestExecControlAndCancel(t *testing.T) {
	c := startPair(t, &fakeHandler{exited: make(chan struct{})})
	ctx := t.Context()
	if _, err := c.Exec(ctx, ExecRequest{Argv: []string{"missing"}}); err == nil || !strings.Contains(err.Error(), ReasonNotFound) {
		t.Fatalf("exec missing: %v", err)
	}
	p, err := c.Exec(ctx, ExecRequest{Argv: []string{"sleep"}, TTY: true})
	if err != nil {
		t.Fatal(err)
	}
	p.Resize(24, 80)
	line, _ := bufio.NewReader(p.Stdout).ReadString('\n')
	if line != "size 24x80\n" {
		t.Fatalf("resize: got %q", line)
	}
	p.Signal(syscall.SIGINT)
	ex, err := p.Wait(ctx)
	if err != nil || ex.Code != 130 || ex.Signal != 2 {
		t.Fatalf("signal: %+v %v", ex, err)
	}
}

// TestReconnect: the host goes away mid-session and a new host connects on
// the same port with garbage left in the channel; the guest serves it.
func TestReconnect(t *testing.T) {
	h := &fakeHandler{exited: make(chan struct{}), exit: ExitStatus{Code: 9}}
	close(h.exited)
	hostEnd, guestEnd := net.Pipe()
	defer guestEnd.Close()
	go Serve(t.Context(), guestEnd, h)
	ctx := t.Context()

	// First host: connects, then dies halfway through writing a frame.
	fmt.Fprintf(hostEnd, "%s %d first\n", helloWord, ProtocolVersion)
	br := bufio.NewReader(hostEnd)
	if _, err := awaitLine(br, readyWord, "first"); err != nil {
		t.Fatal(err)
	}
	half := appendFrame(nil, frame{typ: frameOpen, stream: 1, payload: []byte(`{"op":"status"}`)})
	hostEnd.Write(half[:5]) // returns once the guest has read it

	// Second host on the same channel (a serial port keeps its bytes).
	c, err := NewClient(ctx, &joined{r: br, Conn: hostEnd})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ex, err := c.Wait(ctx)
	if err != nil || ex.Code != 9 {
		t.Fatalf("Wait after reconnect = %+v, %v", ex, err)
	}
}

type joined struct {
	r io.Reader
	net.Conn
}

func (j *joined) Read(p []byte) (int, error) { return j.r.Read(p) }

func TestVsockConnect(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "v.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	h := &fakeHandler{exited: make(chan struct{})}
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		line, _ := bufio.NewReader(io.LimitReader(conn, 14)).ReadString('\n') // "CONNECT 1024\n"
		if line != fmt.Sprintf("CONNECT %d\n", VsockPort) {
			return
		}
		fmt.Fprintf(conn, "OK 1073741824\n")
		Serve(context.Background(), conn, h)
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, sock, VsockPort)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if st, err := c.Status(ctx); err != nil || st.PID != 42 {
		t.Fatalf("Status over vsock = %+v, %v", st, err)
	}
}

type panicHandler struct{ fakeHandler }

func (*panicHandler) Status() Status { panic("boom") }

func TestHandlerPanicIsAnError(t *testing.T) {
	c := startPair(t, &panicHandler{fakeHandler{exited: make(chan struct{})}})
	if _, err := c.Status(t.Context()); err == nil || !strings.Contains(err.Error(), "internal error: boom") {
		t.Fatalf("Status with a panicking handler: %v", err)
	}
	// The session survives.
	if err := c.Signal(t.Context(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// TestRunPumpsStdio: Run copies stdin in, output out, delivers resizes and
// signals from Events, and returns the exit status.
func TestRunPumpsStdio(t *testing.T) {
	c := startPair(t, &fakeHandler{exited: make(chan struct{})})
	ctx := t.Context()
	var out, errb bytes.Buffer
	st, err := c.Run(ctx, ExecRequest{Argv: []string{"upper"}}, ExecIO{Stdin: strings.NewReader("hello"), Stdout: &out, Stderr: &errb})
	if err != nil || st.Code != 3 || out.String() != "HELLO" || errb.String() != "done" {
		t.Fatalf("upper: %+v, %v, stdout %q, stderr %q", st, err, out.String(), errb.String())
	}
	events := make(chan ExecEvent, 2)
	events <- ExecEvent{Rows: 24, Cols: 80}
	var sized firstWrite
	sized.seen = make(chan struct{})
	go func() {
		<-sized.seen
		events <- ExecEvent{Signal: int(syscall.SIGTERM)}
	}()
	st, err = c.Run(ctx, ExecRequest{Argv: []string{"sleep"}}, ExecIO{Stdout: &sized, Events: events})
	if err != nil || st.Signal != int(syscall.SIGTERM) || !strings.Contains(sized.String(), "size 24x80") {
		t.Fatalf("sleep: %+v, %v, stdout %q", st, err, sized.String())
	}
	if _, err := c.Run(ctx, ExecRequest{Argv: []string{"missing"}}, ExecIO{}); err == nil {
		t.Error("a process init cannot start ran")
	}
}

// firstWrite closes seen on its first write.
type firstWrite struct {
	mu   sync.Mutex
	b    bytes.Buffer
	seen chan struct{}
	once sync.Once
}

func (w *firstWrite) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.once.Do(func() { close(w.seen) })
	return w.b.Write(p)
}

func (w *firstWrite) String() string { w.mu.Lock(); defer w.mu.Unlock(); return w.b.String() }
