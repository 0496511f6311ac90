package dockerapi

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync"
)

// Docker's multiplexed stream (attach, exec and logs without a TTY): each
// frame is [stream, 0, 0, 0, size uint32 big-endian] then size bytes.
const (
	streamStdout byte = 1
	streamStderr byte = 2
)

type muxWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (m *muxWriter) stream(id byte) io.Writer { return muxStream{m, id} }

type muxStream struct {
	m  *muxWriter
	id byte
}

func (s muxStream) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var hdr [8]byte
	hdr[0] = s.id
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(p)))
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if _, err := s.m.w.Write(hdr[:]); err != nil {
		return 0, err
	}
	return s.m.w.Write(p)
}

// outputs are where a container's or exec's stdout and stderr go: raw with
// a TTY (one stream), framed without.
func outputs(w io.Writer, tty bool) (stdout, stderr io.Writer) {
	if tty {
		return w, w
	}
	m := &muxWriter{w: w}
	return m.stream(streamStdout), m.stream(streamStderr)
}

// hijack takes the connection over for a bidirectional stream, answering
// 101 UPGRADED when the client asked for an upgrade (as the docker CLI
// does) and 200 otherwise.
func hijack(w http.ResponseWriter, r *http.Request, tty bool) (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	ct := "application/vnd.docker.multiplexed-stream"
	if tty {
		ct = "application/vnd.docker.raw-stream"
	}
	hdr := "HTTP/1.1 200 OK\r\nContent-Type: " + ct + "\r\n\r\n"
	if r.Header.Get("Upgrade") != "" {
		hdr = "HTTP/1.1 101 UPGRADED\r\nContent-Type: " + ct + "\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
	}
	if _, err := brw.WriteString(hdr); err != nil {
		conn.Close()
		return nil, nil, err
	}
	if err := brw.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, brw, nil
}

// closeWrite half-closes a hijacked connection so the client sees the end
// of output while it may still be sending.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// writeJSONLine writes one value of a JSON stream and flushes it.
func writeJSONLine(w http.ResponseWriter, v any) error {
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return err
	}
	flush(w)
	return nil
}
