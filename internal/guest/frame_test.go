package guest

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	in := []frame{
		{typ: frameOpen, stream: 1, payload: []byte(`{"op":"status"}`)},
		{typ: frameData, stream: 3, payload: append([]byte{1}, bytes.Repeat([]byte("x"), maxDataSize)...)},
		{typ: frameCancel, stream: 5, payload: []byte{}},
	}
	var buf []byte
	for _, f := range in {
		buf = appendFrame(buf, f)
	}
	r := bufio.NewReader(bytes.NewReader(buf))
	for _, want := range in {
		got, err := readFrame(r)
		if err != nil {
			t.Fatal(err)
		}
		if got.typ != want.typ || got.stream != want.stream || !bytes.Equal(got.payload, want.payload) {
			t.Fatalf("got %v/%d/%d bytes, want %v/%d/%d", got.typ, got.stream, len(got.payload), want.typ, want.stream, len(want.payload))
		}
	}
	if _, err := readFrame(r); !errors.Is(err, io.EOF) {
		t.Fatalf("at end: %v, want EOF", err)
	}
}

func TestFrameRejects(t *testing.T) {
	for name, in := range map[string][]byte{
		"bad magic":  []byte("FERRY-HELLO 1 x\n"),
		"bad type":   {frameMagic, 99, 0, 0, 0, 1, 0, 0, 0, 0},
		"too large":  {frameMagic, byte(frameData), 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff},
		"short":      {frameMagic, byte(frameData), 0, 0},
		"short body": {frameMagic, byte(frameData), 0, 0, 0, 1, 0, 0, 0, 9, 1},
	} {
		r := bufio.NewReader(bytes.NewReader(in))
		_, err := readFrame(r)
		if err == nil {
			t.Errorf("%s: no error", name)
		}
		if name == "bad magic" {
			// The byte is left for the hello scanner.
			if !errors.Is(err, errDesync) || r.Buffered() != len(in) {
				t.Errorf("bad magic: err %v, %d buffered", err, r.Buffered())
			}
		}
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add(appendFrame(nil, frame{typ: frameOpen, stream: 1, payload: []byte("{}")}))
	f.Add([]byte{frameMagic, 3, 0, 0, 0, 1, 0, 0, 0, 2, 1, 'a'})
	f.Add([]byte("FERRY-HELLO 1 abc\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for {
			fr, err := readFrame(r)
			if err != nil {
				return
			}
			if len(fr.payload) > MaxPayload || fr.typ == 0 || fr.typ >= frameMax {
				t.Fatalf("accepted bad frame %v len %d", fr.typ, len(fr.payload))
			}
			// Re-encoding yields the bytes it came from.
			enc := appendFrame(nil, fr)
			if !bytes.Contains(data, enc) {
				t.Fatalf("re-encoded frame not found in input")
			}
		}
	})
}

// FuzzServe feeds arbitrary bytes to the guest side of the protocol: it must
// neither panic nor hang.
func FuzzServe(f *testing.F) {
	f.Add([]byte("FERRY-HELLO 1 n\n" + string(appendFrame(nil, frame{typ: frameOpen, stream: 1, payload: []byte(`{"op":"status"}`)}))))
	f.Add([]byte("garbage\nFERRY-HELLO 1 n\n\xfe\x03\x00\x00\x00\x01\x00\x00\x00\x01\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rw := &fuzzConn{r: bytes.NewReader(data)}
		_ = Serve(t.Context(), rw, &fakeHandler{exited: make(chan struct{})})
	})
}

type fuzzConn struct {
	r io.Reader
}

func (c *fuzzConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *fuzzConn) Write(p []byte) (int, error) { return len(p), nil }
