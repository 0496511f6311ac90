package firecracker

import (
	"bufio"
	"context"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// fakeFirecracker answers CONNECT like Firecracker's hybrid vsock: it
// refuses the first attempt (guest not listening yet), then accepts.
func TestDialVsock(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "v.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		time.Sleep(50 * time.Millisecond) // socket appears late
		l, err := net.Listen("unix", sock)
		if err != nil {
			return
		}
		t.Cleanup(func() { l.Close() })
		for i := 0; ; i++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			r := bufio.NewReader(c)
			line, _ := r.ReadString('\n')
			if line != "CONNECT 1024\n" || i == 0 {
				c.Close()
				continue
			}
			io.WriteString(c, "OK 1073741824\nhello")
			c.Close()
		}
	}()
	c, err := DialVsock(ctx, sock, 1024)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, _ := io.ReadAll(c)
	if string(b) != "hello" {
		t.Fatalf("after handshake read %q, want %q", b, "hello")
	}
}
