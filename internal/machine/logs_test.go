package machine

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/logs"
)

func TestLogsTailHideAndFollow(t *testing.T) {
	w := newWorld()
	w.hold = true
	dir := t.TempDir()
	m := newManager(t, w, dir)
	mc, err := m.Create(ctx, "", types.CreateRequest{Config: types.Config{Image: "busybox"}})
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "machines", mc.ID, "console.log")
	if err := os.WriteFile(logPath+".1", []byte("old 1\r\nold 2\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(logPath, []byte("a\r\nferry-init: exit {\"code\":0}\r\nb\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	collect := func(opt LogOptions) string {
		var out strings.Builder
		if err := m.Logs(ctx, "", mc.ID, opt, func(e logs.Entry) error {
			out.Write(e.Data)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	if got := collect(LogOptions{}); got != "old 1\nold 2\na\nb\n" {
		t.Fatalf("all = %q", got)
	}
	if got := collect(LogOptions{Tail: 2}); got != "a\nb\n" {
		t.Fatalf("tail 2 = %q", got)
	}

	// Follow: existing lines, then appended ones (and a prompt without a
	// newline), until the machine stops.
	var mu sync.Mutex
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- m.Logs(ctx, "", mc.ID, LogOptions{Follow: true, Tail: 1}, func(e logs.Entry) error {
			b := e.Data
			mu.Lock()
			defer mu.Unlock()
			out.Write(b)
			return nil
		})
	}()
	eventually(t, "tail streamed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return out.String() == "b\n"
	})
	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("c\r\n/ # ")
	f.Close()
	eventually(t, "prompt streamed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return out.String() == "b\nc\n/ # "
	})
	if _, err := m.Stop(ctx, "", mc.ID, StopOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end when the machine stopped")
	}
}

// TestLogsFollowConsoleFlood: a guest floods its console without a newline
// (the review saw a follower hold a 56 MiB "line"). The follower hands it
// out in pieces of at most MaxLogLine, every byte once and in order, also
// across a rotation by the console writer (console.log renamed to .1 and a
// new file started), and history reads split long lines too.
func TestLogsFollowConsoleFlood(t *testing.T) {
	w := newWorld()
	w.hold = true
	dir := t.TempDir()
	m := newManager(t, w, dir)
	mc, err := m.Create(ctx, "", types.CreateRequest{Config: types.Config{Image: "busybox"}})
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "machines", mc.ID, "console.log")
	os.WriteFile(logPath, []byte("start\n"), 0o600)

	var mu sync.Mutex
	var got bytes.Buffer
	biggest := 0
	done := make(chan error, 1)
	go func() {
		done <- m.Logs(ctx, "", mc.ID, LogOptions{Follow: true}, func(e logs.Entry) error {
			b := e.Data
			mu.Lock()
			defer mu.Unlock()
			got.Write(b)
			biggest = max(biggest, len(b))
			return nil
		})
	}()
	const flood = 20 << 20
	var want bytes.Buffer
	want.WriteString("start\n")
	f, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	for i := 0; i < flood>>20; i++ {
		if i == 12 { // the console writer rotates mid-flood
			f.Close()
			os.Rename(logPath, logPath+".1")
			f, _ = os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		}
		f.Write(chunk)
		want.Write(chunk)
		time.Sleep(2 * time.Millisecond)
	}
	f.WriteString("\nend\n")
	want.WriteString("\nend\n")
	f.Close()
	eventually(t, "the flood streamed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got.Len() >= want.Len()
	})
	if _, err := m.Stop(ctx, "", mc.ID, StopOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("followed %d bytes, want %d (the flood, once, in order)", got.Len(), want.Len())
	}
	if biggest > MaxLogLine {
		t.Fatalf("a piece of %d bytes, over MaxLogLine %d", biggest, MaxLogLine)
	}
	// History of the same files: pieces too.
	var hist bytes.Buffer
	largest := 0
	if err := m.Logs(ctx, "", mc.ID, LogOptions{}, func(e logs.Entry) error {
		b := e.Data
		hist.Write(b)
		largest = max(largest, len(b))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if largest > MaxLogLine || !bytes.HasSuffix(hist.Bytes(), []byte("end\n")) {
		t.Fatalf("history: largest piece %d, ends %q", largest, hist.Bytes()[max(0, hist.Len()-10):])
	}
}

// TestLogsStore: lines of the console writer's store come with their
// stream and the time they were stored; Since and Until go by that time,
// pieces of a stream are joined, and untagged platform lines are left out.
func TestLogsStore(t *testing.T) {
	w := newWorld()
	dir := t.TempDir()
	m := newManager(t, w, dir)
	mc, err := m.Create(ctx, "", types.CreateRequest{Config: types.Config{Image: "busybox"}})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }
	var b []byte
	for _, e := range []logs.Entry{
		{Time: at(1), Stream: logs.Stdout, Data: []byte("out 1\n")},
		{Time: at(2), Stream: logs.Stderr, Partial: true, Data: []byte("err ")},
		{Time: at(3), Stream: logs.Stdout, Data: []byte("out 2\n")},
		{Time: at(4), Stream: logs.Stderr, Data: []byte("2\n")},
		{Time: at(5), Stream: logs.Console, Data: []byte("ferry-init: exit {\"code\":0}\r\n")},
		{Time: at(6), Stream: logs.Console, Data: []byte("untagged\r\n")},
	} {
		b = e.Append(b)
	}
	if err := os.WriteFile(filepath.Join(dir, "machines", mc.ID, "console.log"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	collect := func(opt LogOptions) string {
		var out strings.Builder
		if err := m.Logs(ctx, "", mc.ID, opt, func(e logs.Entry) error {
			fmt.Fprintf(&out, "%d %s %q|", e.Time.Sub(base)/time.Second, e.Stream, e.Data)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	for _, c := range []struct {
		name string
		opt  LogOptions
		want string
	}{
		{"all", LogOptions{}, `1 stdout "out 1\n"|3 stdout "out 2\n"|2 stderr "err 2\n"|6 stdout "untagged\n"|`},
		// A line joined from pieces has the time of its first.
		{"since", LogOptions{Since: at(3)}, `3 stdout "out 2\n"|6 stdout "untagged\n"|`},
		{"until", LogOptions{Until: at(3)}, `1 stdout "out 1\n"|2 stderr "err 2\n"|`},
		{"tail", LogOptions{Tail: 1}, `6 stdout "untagged\n"|`},
	} {
		if got := collect(c.opt); got != c.want {
			t.Errorf("%s: %s\nwant %s", c.name, got, c.want)
		}
	}
}

// TestLogsOldGuest: a guest that writes no console records (a ferry-init
// older than them, or one whose host did not ask) has its plain console
// kept by the console writer as the console's lines: Logs hands them out
// as one stream, stdout, "\r\n" made "\n", stamped when they arrived, the
// platform's lines left out.
func TestLogsOldGuest(t *testing.T) {
	w := newWorld()
	dir := t.TempDir()
	m := newManager(t, w, dir)
	mc, err := m.Create(ctx, "", types.CreateRequest{Config: types.Config{Image: "busybox"}})
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	cw := &logs.Writer{Path: filepath.Join(dir, "machines", mc.ID, "console.log"), Max: 1 << 20,
		Now: func() time.Time { clock = clock.Add(time.Second); return clock }}
	// An old guest's console: the entrypoint's stdout and stderr together
	// through the tty's output processing, and the platform's lines.
	cw.Write([]byte("[    0.500000] kernel says\r\nout\r\nerr\r\nferry-init: exit {\"code\":0}\r\n"))
	cw.Flush(true)
	cw.Close()
	var got []string
	if err := m.Logs(ctx, "", mc.ID, LogOptions{}, func(e logs.Entry) error {
		got = append(got, fmt.Sprintf("%s %s %q", e.Time.Format(time.TimeOnly), e.Stream, e.Data))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{`10:00:02 stdout "out\n"`, `10:00:03 stdout "err\n"`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("entries %q, want %q", got, want)
	}
}
