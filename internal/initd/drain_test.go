package initd

import (
	"bytes"
	"os"
	"sync"
	"testing"
	"time"
)

// slowWriter is a host that reads the control channel slowly.
type slowWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	delay time.Duration
}

func (w *slowWriter) Write(b []byte) (int, error) {
	time.Sleep(w.delay)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(b)
}

func (w *slowWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// What an exec wrote before it exited reaches the host however slowly the
// host takes it (a restored guest's first exec under load once lost all
// its output to a fixed drain deadline); a stream a background child keeps
// open with nothing in it does not hold the exit back for ever.
func TestExecOutputDrains(t *testing.T) {
	p := &execProc{done: make(chan struct{})}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	host := &slowWriter{delay: 3 * drainGrace}
	p.copy(r, host)
	want := "written before the exit\n"
	if _, err := w.WriteString(want); err != nil {
		t.Fatal(err)
	}
	w.Close() // the process exited
	p.finish()
	if got := host.String(); got != want {
		t.Fatalf("the host got %q after the exit, want %q", got, want)
	}

	// A background child holds the pipe open, writing nothing.
	q := &execProc{done: make(chan struct{})}
	r2, w2, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	q.copy(r2, &slowWriter{})
	finished := make(chan struct{})
	go func() { q.finish(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(time.Minute):
		t.Fatal("an idle pipe held by a background child held the exit back")
	}
}

// An exec whose stream waited on an empty pipe longer than drainGrace
// while it ran (a slow first exec after a restore: TCG translating
// everything anew) and whose copy loop has not run yet when it exits
// (woken, not scheduled) still has all its output delivered before its
// exit is reported: neither the time waited while it ran nor unread
// output in the pipe counts as idle.
func TestExecOutputOvertaken(t *testing.T) {
	p := &execProc{done: make(chan struct{})}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	host := &slowWriter{}
	c := p.copier(r)
	time.Sleep(2 * drainGrace) // the process runs, its stream waits on an empty pipe
	want := "written just before the exit\n"
	if _, err := w.WriteString(want); err != nil {
		t.Fatal(err)
	}
	w.Close() // the process exited
	time.AfterFunc(3*drainGrace, func() { p.copyLoop(c, host) })
	p.finish()
	if got := host.String(); got != want {
		t.Fatalf("the exit overtook the output: the host got %q, want %q", got, want)
	}
}
