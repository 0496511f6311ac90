package machine

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLogsTailHideAndFollow(t *testing.T) {
	w := newWorld()
	w.hold = true
	dir := t.TempDir()
	m := newManager(t, w, dir)
	m.deps.HideLine = func(l []byte) bool { return bytes.HasPrefix(l, []byte("ferry-init: exit")) }
	mc, err := m.Create(ctx, "", CreateRequest{Config: Config{Image: "busybox"}})
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
