package initd

import (
	"context"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// TestSupervisorOverControl runs the real supervisor (reaper, exec with
// pipes and a pty, wait/ack) behind the control protocol, in-process.
func TestSupervisorOverControl(t *testing.T) {
	prereq.File(t, "/bin/sh", prereq.Remedy("sh"))
	in := &Init{start: time.Now(), log: NewLogger(time.Now()), reaper: NewReaper()}
	in.sup = newSupervisor(in)
	me := os.Getuid()
	in.cred = Cred{UID: uint32(me), GID: uint32(os.Getgid()), Home: "/"}
	in.env = BuildEnv([]string{"GREETING=hi"}, nil, "/", "", false)
	in.workdir = t.TempDir()
	in.sup.markReady(in)

	hostEnd, guestEnd := net.Pipe()
	defer guestEnd.Close()
	go guest.Serve(context.Background(), guestEnd, in.sup)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := guest.NewClient(ctx, hostEnd)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	if st, err := c.Status(ctx); err != nil || st.State != guest.StateBooting {
		t.Fatalf("status %+v %v", st, err)
	}
	p, err := c.Exec(ctx, guest.ExecRequest{Argv: []string{"sh", "-c", "read x; echo $GREETING $x $PWD; echo oops >&2; exit 4"}, Stdin: true})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(p.Stdin(), "there\n")
	p.Stdin().Close()
	outc := make(chan string)
	go func() { b, _ := io.ReadAll(p.Stdout); outc <- string(b) }()
	errc := make(chan string)
	go func() { b, _ := io.ReadAll(p.Stderr); errc <- string(b) }()
	ex, err := p.Wait(ctx)
	if err != nil || ex.Code != 4 {
		t.Fatalf("exec exit %+v %v", ex, err)
	}
	if out, e := <-outc, <-errc; out != "hi there "+in.workdir+"\n" || e != "oops\n" {
		t.Fatalf("stdout %q stderr %q", out, e)
	}

	if _, err := c.Exec(ctx, guest.ExecRequest{Argv: []string{"no-such-tool"}}); err == nil || !strings.Contains(err.Error(), guest.ReasonNotFound) {
		t.Fatalf("missing tool: %v", err)
	}

	// A tty exec sees a terminal of the requested size.
	p, err = c.Exec(ctx, guest.ExecRequest{Argv: []string{"sh", "-c", "stty size"}, TTY: true, Rows: 12, Cols: 34})
	if err != nil {
		prereq.PTY(t)
		t.Fatalf("tty exec: %v", err)
	}
	go func() { b, _ := io.ReadAll(p.Stdout); outc <- string(b) }()
	if ex, err := p.Wait(ctx); err != nil || ex.Code != 0 {
		t.Fatalf("tty exec %+v %v", ex, err)
	}
	if out := <-outc; !strings.Contains(out, "12 34") {
		t.Fatalf("tty output %q", out)
	}

	// Wait returns once the entrypoint's status is recorded, and Ack lets
	// init power off before its grace period.
	go in.sup.exited(guest.ExitStatus{Code: 7})
	ex, err = c.Wait(ctx)
	if err != nil || ex.Code != 7 {
		t.Fatalf("wait %+v %v", ex, err)
	}
	start := time.Now()
	in.sup.awaitAck(10 * time.Second)
	if time.Since(start) > 5*time.Second {
		t.Fatal("ack did not arrive")
	}
}
