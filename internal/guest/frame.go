package guest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ProtocolVersion is the control protocol version, exchanged in the
// hello/ready lines that start every session.
const ProtocolVersion = 1

// SerialPortName is the virtio-serial port name the host gives the control
// channel under QEMU (virtserialport,name=...); the guest finds it in
// /sys/class/virtio-ports/*/name.
const SerialPortName = "ferry.control"

// VsockPort is the vsock port init listens on under Firecracker; the host
// connects through Firecracker's unix socket with "CONNECT <port>\n".
const VsockPort = 1024

// A frame is the unit of the control protocol:
//
//	magic 0xFE | type u8 | stream u32 BE | length u32 BE | payload
//
// Streams are opened by the client (odd ids) with frameOpen and ended by
// frameReply (unary requests), frameExit (exec) or frameCancel.
const (
	frameMagic  = 0xFE
	headerSize  = 10
	MaxPayload  = 64 << 10 // largest frame payload accepted
	maxDataSize = 32 << 10 // largest stdio chunk sent
)

type frameType uint8

const (
	frameOpen    frameType = 1 + iota // c→s: JSON request
	frameReply                        // s→c: JSON reply
	frameData                         // both: fd u8 + bytes
	frameEOF                          // c→s: fd u8 (stdin closed)
	frameWindow                       // both: fd u8 + increment u32
	frameControl                      // c→s: JSON control (resize, signal)
	frameExit                         // s→c: JSON ExitStatus, ends an exec stream
	frameCancel                       // c→s: abandon the stream
	frameMax
)

func (t frameType) String() string {
	names := [...]string{"?", "open", "reply", "data", "eof", "window", "control", "exit", "cancel"}
	if t < frameMax {
		return names[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

type frame struct {
	typ     frameType
	stream  uint32
	payload []byte
}

// errDesync reports bytes that are not a frame header: the peer restarted
// mid-stream, or it is not speaking this protocol.
var errDesync = errors.New("control protocol: lost frame sync")

// appendFrame encodes f onto b.
func appendFrame(b []byte, f frame) []byte {
	b = append(b, frameMagic, byte(f.typ))
	b = binary.BigEndian.AppendUint32(b, f.stream)
	b = binary.BigEndian.AppendUint32(b, uint32(len(f.payload)))
	return append(b, f.payload...)
}

// readFrame decodes one frame. It never allocates more than MaxPayload.
// A header that cannot be valid is not consumed beyond its first byte, so
// the caller can resynchronise on a hello line that follows a torn frame.
func readFrame(r *bufio.Reader) (frame, error) {
	first, err := r.Peek(1)
	if err != nil {
		return frame{}, err
	}
	if first[0] != frameMagic {
		return frame{}, errDesync
	}
	h, err := r.Peek(headerSize)
	if err != nil {
		return frame{}, unexpectedEOF(err)
	}
	f := frame{typ: frameType(h[1]), stream: binary.BigEndian.Uint32(h[2:6])}
	n := binary.BigEndian.Uint32(h[6:10])
	if f.typ == 0 || f.typ >= frameMax || n > MaxPayload {
		_, _ = r.Discard(1)
		return frame{}, fmt.Errorf("control protocol: bad frame header % x: %w", h, errDesync)
	}
	_, _ = r.Discard(headerSize)
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return frame{}, unexpectedEOF(err)
	}
	return f, nil
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
