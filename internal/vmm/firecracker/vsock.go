package firecracker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"
)

// DialVsock opens a connection to guest vsock port through Firecracker's
// hybrid-vsock unix socket: connect, send "CONNECT <port>\n", expect
// "OK <hostport>\n". It retries until ctx ends while the socket is missing or
// the guest is not listening yet (Firecracker then closes the connection).
func DialVsock(ctx context.Context, uds string, port uint32) (net.Conn, error) {
	var dialer net.Dialer
	for {
		c, err := dialer.DialContext(ctx, "unix", uds)
		if err == nil {
			if err = handshake(ctx, c, port); err == nil {
				return c, nil
			}
			_ = c.Close()
		} else if !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("dial vsock %s: %w", uds, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("dial vsock %s port %d: %w (last: %w)", uds, port, ctx.Err(), err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// handshake does the CONNECT exchange, reading the reply a byte at a time
// so nothing after its newline is consumed.
func handshake(ctx context.Context, c net.Conn, port uint32) error {
	if dl, ok := ctx.Deadline(); ok {
		if err := c.SetDeadline(dl); err != nil {
			return err
		}
		defer func() { _ = c.SetDeadline(time.Time{}) }()
	}
	if _, err := fmt.Fprintf(c, "CONNECT %d\n", port); err != nil {
		return err
	}
	var line []byte
	b := make([]byte, 1)
	for len(line) < 64 {
		if _, err := c.Read(b); err != nil {
			return err
		}
		if b[0] == '\n' {
			break
		}
		line = append(line, b[0])
	}
	if !strings.HasPrefix(string(line), "OK ") {
		return fmt.Errorf("vsock handshake: %q", line)
	}
	return nil
}
