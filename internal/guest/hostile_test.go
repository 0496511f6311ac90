package guest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// hostileGuest speaks the control protocol on the guest end of a socket
// pair and breaks its rules on purpose.
type hostileGuest struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
	wmu  sync.Mutex

	mu      sync.Mutex
	cancels map[uint32]bool
	opens   chan uint32
}

// socketPair returns the two ends of a unix stream socket pair, as the
// daemon's control socket and the VMM's chardev would be.
func socketPair(t *testing.T) (host, guest net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int, name string) net.Conn {
		f := os.NewFile(uintptr(fd), name)
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	return conn(fds[0], "host"), conn(fds[1], "guest")
}

// startHostile connects a Client to a hostile guest; violations are
// collected.
func startHostile(t *testing.T) (*Client, *hostileGuest, func() []error) {
	t.Helper()
	hostEnd, guestEnd := socketPair(t)
	g := &hostileGuest{t: t, conn: guestEnd, br: bufio.NewReader(guestEnd), cancels: map[uint32]bool{}, opens: make(chan uint32, 16)}
	ready := make(chan error, 1)
	go func() {
		nonce, err := awaitLine(g.br, helloWord, "")
		if err == nil {
			_, err = fmt.Fprintf(guestEnd, "%s %d %s\n", readyWord, ProtocolVersion, nonce)
		}
		ready <- err
	}()
	var mu sync.Mutex
	var violations []error
	var logs bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	c, err := NewClient(ctx, hostEnd,
		WithLogger(slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil)).With("machine", "m1")),
		WithViolationFunc(func(err error) { mu.Lock(); violations = append(violations, err); mu.Unlock() }))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	go g.read()
	t.Cleanup(func() { c.Close() })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("client log:\n%s", logs.String())
		}
	})
	return c, g, func() []error { mu.Lock(); defer mu.Unlock(); return append([]error(nil), violations...) }
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func (g *hostileGuest) send(f frame) error {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	_, err := g.conn.Write(appendFrame(nil, f))
	return err
}

func (g *hostileGuest) reply(id uint32, r reply) {
	b, _ := json.Marshal(r)
	if err := g.send(frame{typ: frameReply, stream: id, payload: b}); err != nil {
		g.t.Error(err)
	}
}

// read runs the guest's only reader: it hands opened streams to open and
// notes cancels, until the connection ends.
func (g *hostileGuest) read() {
	for {
		f, err := readFrame(g.br)
		if err != nil {
			close(g.opens)
			return
		}
		switch f.typ {
		case frameOpen:
			g.opens <- f.stream
		case frameCancel:
			g.mu.Lock()
			g.cancels[f.stream] = true
			g.mu.Unlock()
		}
	}
}

// open waits for the host to open a stream.
func (g *hostileGuest) open() uint32 {
	id, ok := <-g.opens
	if !ok {
		g.t.Fatal("hostile guest: the host closed the connection")
	}
	return id
}

func (g *hostileGuest) cancelled(id uint32) bool {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		g.mu.Lock()
		ok := g.cancels[id]
		g.mu.Unlock()
		if ok {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

// flood writes n bytes of stdout on stream id, ignoring the window, and
// returns how many the host took before it stopped reading or dropped them.
func (g *hostileGuest) flood(id uint32, fd byte, n int) {
	chunk := append([]byte{fd}, bytes.Repeat([]byte("x"), maxDataSize)...)
	for sent := 0; sent < n; sent += maxDataSize {
		if err := g.send(frame{typ: frameData, stream: id, payload: chunk}); err != nil {
			return // the host closed the connection
		}
	}
}

// TestHostileGuestIgnoresWindow: a guest that sends 64 MiB on an exec
// stream whose reader is not reading (the flood in the review reached 255
// MiB of daemon heap) makes the host hold at most one window; the stream
// is closed with an ErrViolation, the guest is told to cancel it, the
// violation is reported, and the connection still serves other requests.
func TestHostileGuestIgnoresWindow(t *testing.T) {
	c, g, violations := startHostile(t)
	ctx := t.Context()
	type result struct {
		p   *Process
		err error
	}
	started := make(chan result, 1)
	go func() {
		p, err := c.Exec(ctx, ExecRequest{Argv: []string{"yes"}})
		started <- result{p, err}
	}()
	id := g.open()
	g.reply(id, reply{PID: 99})
	r := <-started
	if r.err != nil {
		t.Fatal(r.err)
	}
	g.flood(id, 1, 64<<20) // nobody reads p.Stdout meanwhile

	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := r.p.Wait(wctx); !errors.Is(err, ErrViolation) {
		t.Fatalf("Wait after a window violation = %v, want ErrViolation", err)
	}
	if _, err := io.ReadAll(r.p.Stdout); !errors.Is(err, ErrViolation) || !strings.Contains(err.Error(), "window") {
		t.Fatalf("reading stdout after the violation: %v, want ErrViolation naming the window", err)
	}
	if peak := c.m.peak.Load(); peak > window {
		t.Fatalf("the host buffered %d bytes for a guest that ignored the window; want at most %d", peak, window)
	}
	if held := c.m.buffered.Load(); held != 0 {
		t.Fatalf("%d bytes still buffered after the stream was closed", held)
	}
	if !g.cancelled(id) {
		t.Fatal("the guest was not told to cancel the stream")
	}
	if v := violations(); len(v) != 1 || !errors.Is(v[0], ErrViolation) {
		t.Fatalf("violations reported: %v, want one", v)
	}
	select {
	case <-c.Done():
		t.Fatal("one violation closed the connection")
	default:
	}
}

// TestHostileGuestRepeatedViolations: the third violation closes the
// connection, and control-frame floods and data on stdin count too.
func TestHostileGuestRepeatedViolations(t *testing.T) {
	c, g, violations := startHostile(t)
	ctx := t.Context()
	abuse := []func(id uint32){
		func(id uint32) { // a flood of replies
			for i := 0; i < 10*maxCtrlFrames; i++ {
				g.reply(id, reply{PID: i})
			}
		},
		func(id uint32) { g.flood(id, 0, maxDataSize) }, // data "to" the host's stdin
		func(id uint32) { g.flood(id, 2, 2*window) },    // stderr beyond the window
	}
	for i, bad := range abuse {
		errc := make(chan error, 1)
		go func() {
			p, err := c.Exec(ctx, ExecRequest{Argv: []string{"x"}})
			if err == nil {
				_, err = p.Wait(ctx)
			}
			errc <- err
		}()
		id := g.open()
		if i > 0 {
			g.reply(id, reply{PID: 1})
		}
		bad(id)
		if err := <-errc; !errors.Is(err, ErrViolation) && !errors.Is(err, ErrClosed) {
			t.Fatalf("abuse %d: %.200v, want a violation", i, err)
		}
		if peak := c.m.peak.Load(); peak > maxCtrlFrames*MaxPayload+3*window {
			t.Fatalf("abuse %d: peak %d bytes buffered", i, peak)
		}
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the connection stayed open after 3 violations")
	}
	if len(violations()) != maxViolations {
		t.Fatalf("violations: %v", violations())
	}
	if _, err := c.Status(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Status on a connection closed for violations: %v", err)
	}
}

// TestServerBoundsStreams: a host (or anything on the guest's port) that
// opens streams without end gets an error beyond maxStreams, and init
// holds no more.
func TestServerBoundsStreams(t *testing.T) {
	hostEnd, guestEnd := socketPair(t)
	h := &fakeHandler{exited: make(chan struct{})}
	go Serve(t.Context(), guestEnd, h)
	br := bufio.NewReader(hostEnd)
	fmt.Fprintf(hostEnd, "%s %d n\n", helloWord, ProtocolVersion)
	if _, err := awaitLine(br, readyWord, "n"); err != nil {
		t.Fatal(err)
	}
	go func() {
		for id := uint32(1); id < 2*(maxStreams+10); id += 2 {
			hostEnd.Write(appendFrame(nil, frame{typ: frameOpen, stream: id, payload: []byte(`{"op":"wait"}`)}))
		}
	}()
	refused := 0
	for refused < 10 {
		f, err := readFrame(br)
		if err != nil {
			t.Fatal(err)
		}
		var r reply
		if f.typ != frameReply || json.Unmarshal(f.payload, &r) != nil || r.Error == nil || !strings.Contains(r.Error.Message, "too many") {
			t.Fatalf("unexpected %s frame on stream %d: %s", f.typ, f.stream, f.payload)
		}
		if f.stream <= 2*maxStreams {
			t.Fatalf("stream %d refused, within the limit of %d", f.stream, maxStreams)
		}
		refused++
	}
}
