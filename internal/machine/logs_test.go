package machine

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
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
		if err := m.Logs(ctx, "", mc.ID, opt, func(b []byte) error { out.Write(b); return nil }); err != nil {
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
		done <- m.Logs(ctx, "", mc.ID, LogOptions{Follow: true, Tail: 1}, func(b []byte) error {
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
		done <- m.Logs(ctx, "", mc.ID, LogOptions{Follow: true}, func(b []byte) error {
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
	if err := m.Logs(ctx, "", mc.ID, LogOptions{}, func(b []byte) error {
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
