package api

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
)

// Stream writes a newline-delimited JSON stream (Content-Type
// application/x-ndjson), flushing after every value. Long operations (pull
// progress, events, logs) use it; a failure mid-stream is sent as a final
// {"error": ..., "code": ...} value, which the client turns into an error.
type Stream struct {
	w   http.ResponseWriter
	enc *json.Encoder
	rc  *http.ResponseController
}

// NewStream starts an NDJSON reply with status 200.
func NewStream(w http.ResponseWriter) *Stream {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	s := &Stream{w: w, enc: json.NewEncoder(w), rc: http.NewResponseController(w)}
	_ = s.rc.Flush()
	return s
}

// Send writes one value and flushes it.
func (s *Stream) Send(v any) error {
	if err := s.enc.Encode(v); err != nil {
		return err
	}
	return s.rc.Flush()
}

// Fail ends the stream with err as its last value.
func (s *Stream) Fail(err error) error {
	WriteErrorValue(s, err)
	return err
}

// WriteErrorValue sends err in the error-body shape on s.
func WriteErrorValue(s *Stream, err error) {
	_ = s.Send(streamError{ErrorBody: &errorBody{Error: err.Error(), Code: errorCode(err)}})
}

// streamError is the last value of a failed stream.
type streamError struct {
	ErrorBody *errorBody `json:"_error"`
}

// UpgradeProto is the protocol name used for raw bidirectional streams
// (exec, attach): the client sends "Connection: Upgrade" and
// "Upgrade: ferry-stream"; the server answers 101 and both sides then speak
// the stream's own framing over the connection.
const UpgradeProto = "ferry-stream"

// Upgrade switches the request's connection to a raw stream. Call it only
// after validating the request, since errors after it can't be JSON replies.
func Upgrade(w http.ResponseWriter, r *http.Request) (net.Conn, *bufio.ReadWriter, error) {
	if r.Header.Get("Upgrade") != UpgradeProto {
		return nil, nil, fmt.Errorf("expected Upgrade: %s", UpgradeProto)
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("hijack: %w", err)
	}
	_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + UpgradeProto + "\r\n\r\n")
	if err := brw.Flush(); err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	return conn, brw, nil
}
