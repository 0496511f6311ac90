package api

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"sync"
)

// The exec stream: after POST …/exec answers 101, both sides exchange
// frames of [type byte][length uint32 big-endian][payload] on the raw
// connection.
//
//	client → daemon: stdin (data), stdin-eof, resize ({"rows":R,"cols":C})
//	daemon → client: stdout (data), stderr (data), then one of
//	                 exit ({"exit_code":N}) or error ({"error":…,"code":…})
const (
	FrameStdin    byte = 0
	FrameStdout   byte = 1
	FrameStderr   byte = 2
	FrameStdinEOF byte = 3
	FrameResize   byte = 4
	FrameExit     byte = 5
	FrameError    byte = 6
)

// maxFrame bounds one frame's payload.
const maxFrame = 1 << 20

// frameWriter serialises frames from concurrent writers.
type frameWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (f *frameWriter) write(typ byte, p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		n := min(len(p), maxFrame)
		var hdr [5]byte
		hdr[0] = typ
		binary.BigEndian.PutUint32(hdr[1:], uint32(n))
		if _, err := f.w.Write(hdr[:]); err != nil {
			return err
		}
		if _, err := f.w.Write(p[:n]); err != nil {
			return err
		}
		p = p[n:]
		if len(p) == 0 {
			return nil
		}
	}
}

func (f *frameWriter) writeJSON(typ byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return f.write(typ, b)
}

// stream returns an io.Writer that sends each write as a frame of typ.
func (f *frameWriter) stream(typ byte) io.Writer { return frameStream{f, typ} }

type frameStream struct {
	f   *frameWriter
	typ byte
}

func (s frameStream) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := s.f.write(s.typ, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// readFrame reads one frame.
func readFrame(r *bufio.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("exec stream: frame of %d bytes exceeds %d", n, maxFrame)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	return hdr[0], p, nil
}
