package initd

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// attachInit is an Init whose boot is done, with entrypoint argv and an
// in-memory console, serving the control protocol on a pipe.
func attachInit(t *testing.T, tty bool, timeoutMS int, argv ...string) (*Init, *guest.Client, *syncBuffer) {
	t.Helper()
	prereq.File(t, "/bin/sh", prereq.Remedy("sh"))
	in := &Init{start: time.Now(), log: NewLogger(time.Now()), reaper: NewReaper()}
	in.sup = newSupervisor(in)
	in.cfg = &guest.RunConfig{Version: guest.ConfigVersion, TTY: tty, Attach: true, AttachTimeoutMS: timeoutMS,
		Image: guest.Image{Entrypoint: argv}}
	in.cred = Cred{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), Home: "/"}
	in.env = BuildEnv([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "PS1=$ "}, nil, "/", "", tty)
	in.workdir = t.TempDir()
	in.path = "/bin/sh"
	console := &syncBuffer{}
	in.console = console

	hostEnd, guestEnd := net.Pipe()
	t.Cleanup(func() { guestEnd.Close() })
	go guest.Serve(context.Background(), guestEnd, in.sup)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	c, err := guest.NewClient(ctx, hostEnd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return in, c, console
}

// TestAttachedEntrypointTTY attaches to a shell entrypoint through a pty:
// typed input runs, a resize reaches the pty, the exit code is the entrypoint's and the machine's,
// and the output also reaches the console.
func TestAttachedEntrypointTTY(t *testing.T) {
	in, c, console := attachInit(t, true, 0, "/bin/sh")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// The host may attach before init finished booting.
	type res struct {
		p   *guest.Process
		err error
	}
	pc := make(chan res, 1)
	go func() {
		p, err := c.Exec(ctx, guest.ExecRequest{Entrypoint: true, TTY: true, Stdin: true, Rows: 24, Cols: 80})
		pc <- res{p, err}
	}()
	time.Sleep(50 * time.Millisecond)
	if st, _ := c.Status(ctx); st.State != guest.StateBooting {
		t.Fatalf("before the attach the state is %q, want booting", st.State)
	}
	attached, err := in.waitAttached()
	if err != nil || !attached {
		t.Fatalf("waitAttached: %v %v", attached, err)
	}
	r := <-pc
	if r.err != nil {
		prereq.PTY(t)
		t.Fatalf("attach with a tty: %v", r.err)
	}
	p := r.p
	if st, _ := c.Status(ctx); st.State != guest.StateRunning || st.PID != p.PID {
		t.Fatalf("status %+v, want running pid %d", st, p.PID)
	}
	// A second attach is refused.
	if _, err := c.Exec(ctx, guest.ExecRequest{Entrypoint: true, TTY: true}); err == nil {
		t.Fatal("second attach accepted")
	}
	out := &syncBuffer{}
	outc := make(chan string)
	go func() { _, _ = io.Copy(out, p.Stdout); outc <- out.String() }()
	io.WriteString(p.Stdin(), "stty size; echo $((6*7))\n")
	awaitOutput(t, out, "\n42")
	if err := p.Resize(40, 100); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	io.WriteString(p.Stdin(), "stty size\n")
	awaitOutput(t, out, "40 100")
	io.WriteString(p.Stdin(), "exit 3\n")
	ex, err := p.Wait(ctx)
	if err != nil || ex.Code != 3 {
		t.Fatalf("entrypoint exit %+v %v", ex, err)
	}
	if out := <-outc; !strings.Contains(out, "24 80") {
		t.Fatalf("output %q lacks the initial size", out)
	}
	select {
	case ws := <-in.exitCh:
		if ex := in.entryStatus(ws); ex.Code != 3 {
			t.Fatalf("init sees exit %+v", ex)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("init did not get the entrypoint's exit")
	}
	time.Sleep(50 * time.Millisecond) // the console copy is asynchronous only in a VM; here it is direct
	if !strings.Contains(console.String(), "42") {
		t.Fatalf("console %q lacks the output", console.String())
	}
}

// TestAttachedEntrypointPipes is `run -i` without a tty: stdin is a pipe
// that ends when the host closes it; stdout and stderr stay apart.
func TestAttachedEntrypointPipes(t *testing.T) {
	in, c, console := attachInit(t, false, 0, "/bin/sh", "-c", "read x; echo got $x; echo err >&2; exit 5")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() { _, _ = in.waitAttached() }()
	p, err := c.Exec(ctx, guest.ExecRequest{Entrypoint: true, Stdin: true})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(p.Stdin(), "hello\n")
	p.Stdin().Close()
	outc, errc := make(chan string), make(chan string)
	go func() { b, _ := io.ReadAll(p.Stdout); outc <- string(b) }()
	go func() { b, _ := io.ReadAll(p.Stderr); errc <- string(b) }()
	ex, err := p.Wait(ctx)
	if err != nil || ex.Code != 5 {
		t.Fatalf("exit %+v %v", ex, err)
	}
	if o, e := <-outc, <-errc; o != "got hello\n" || e != "err\n" {
		t.Fatalf("stdout %q stderr %q", o, e)
	}
	if !strings.Contains(console.String(), "got hello") {
		t.Fatalf("console %q", console.String())
	}
}

// TestAttachTimeout: without a host, init starts the entrypoint itself,
// and a late attach is refused.
func TestAttachTimeout(t *testing.T) {
	in, c, _ := attachInit(t, false, 50, "/bin/true")
	start := time.Now()
	attached, err := in.waitAttached()
	if attached || err != nil {
		t.Fatalf("waitAttached = %v %v, want false", attached, err)
	}
	if d := time.Since(start); d < 40*time.Millisecond || d > 5*time.Second {
		t.Fatalf("waited %s, want ~50ms", d)
	}
	if _, err := c.Exec(context.Background(), guest.ExecRequest{Entrypoint: true}); err == nil || !strings.Contains(err.Error(), "not waiting") {
		t.Fatalf("late attach: %v", err)
	}
}

// TestAttachRefusedWithoutAttachConfig: a pending attach is answered when
// the config turns out to have no attach (or the boot fails).
func TestAttachRefused(t *testing.T) {
	in, c, _ := attachInit(t, false, 0, "/bin/true")
	errc := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), guest.ExecRequest{Entrypoint: true})
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	in.sup.refuseAttach(&guest.Failure{Reason: guest.ReasonInit, Message: "no attach"})
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "no attach") {
			t.Fatalf("attach: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pending attach not answered")
	}
	if _, err := c.Exec(context.Background(), guest.ExecRequest{Entrypoint: true, Argv: []string{"x"}}); err == nil {
		t.Fatal("attach with argv accepted")
	}
}

// awaitOutput waits (at most 10 s) for out to contain s.
func awaitOutput(t *testing.T, out *syncBuffer, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("output %q lacks %q", out.String(), s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
