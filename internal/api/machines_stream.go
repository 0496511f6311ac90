package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/logs"
	"github.com/ferryvm/ferry/internal/machine"
)

// exec runs a process in a machine: buffered (JSON types.ExecResult) without an
// Upgrade header, streamed with frames (execstream.go) with one.
func (h machineHandlers) exec(w http.ResponseWriter, r *http.Request) error {
	var req types.ExecRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	if len(req.Cmd) == 0 && !req.Entrypoint {
		return fmt.Errorf("exec: field \"cmd\": required: %w", errdefs.ErrInvalidArgument)
	}
	app, id := r.PathValue("app"), r.PathValue("id")
	if r.Header.Get("Upgrade") == "" {
		var out, errb bytes.Buffer
		code, err := h.svc.Exec(r.Context(), app, id, req, guest.ExecIO{Stdout: &out, Stderr: &errb})
		if err != nil {
			return err
		}
		return WriteJSON(w, http.StatusOK, types.ExecResult{ExitCode: code, Stdout: out.String(), Stderr: errb.String()})
	}
	// Fail early, while a JSON error can still be sent.
	if m, err := h.svc.Get(app, id); err != nil {
		return err
	} else if m.State != types.StateStarted {
		return fmt.Errorf("machine %s is %s, not started: %w", m.ID, m.State, errdefs.ErrConflict)
	}
	conn, brw, err := Upgrade(w, r)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	fw := &frameWriter{w: conn}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var stdin io.Reader
	var stdinW *io.PipeWriter
	if req.Stdin {
		var pr *io.PipeReader
		pr, stdinW = io.Pipe()
		stdin = pr
	}
	resize := make(chan guest.ExecEvent, 8)
	go func() {
		defer cancel() // the client went away: end the exec
		for {
			typ, p, err := readFrame(brw.Reader)
			if err != nil {
				if stdinW != nil {
					stdinW.CloseWithError(io.EOF)
				}
				return
			}
			switch typ {
			case FrameStdin:
				if stdinW != nil {
					_, _ = stdinW.Write(p)
				}
			case FrameStdinEOF:
				if stdinW != nil {
					_ = stdinW.Close()
				}
			case FrameResize:
				var ws types.WindowSize
				if json.Unmarshal(p, &ws) == nil {
					select {
					case resize <- guest.ExecEvent{Rows: uint16(ws.Rows), Cols: uint16(ws.Cols)}:
					default:
					}
				}
			}
		}
	}()
	code, err := h.svc.Exec(ctx, app, id, req, guest.ExecIO{Stdin: stdin, Stdout: fw.stream(FrameStdout), Stderr: fw.stream(FrameStderr), Events: resize})
	if err != nil {
		_ = fw.writeJSON(FrameError, errorBody{Error: err.Error(), Code: errdefs.Code(err)})
		return nil
	}
	_ = fw.writeJSON(FrameExit, map[string]int{"exit_code": code})
	return nil
}

// logs streams a machine's console: raw bytes (default) or NDJSON LogLines.
func (h machineHandlers) logs(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var opt machine.LogOptions
	opt.Follow, _ = strconv.ParseBool(q.Get("follow"))
	if t := q.Get("tail"); t != "" && t != "all" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			return fmt.Errorf("tail %q: want a number of lines: %w", t, errdefs.ErrInvalidArgument)
		}
		opt.Tail = n
	}
	if s := q.Get("since"); s != "" {
		t, err := parseSince(s)
		if err != nil {
			return err
		}
		opt.Since = t
	}
	if s := q.Get("until"); s != "" {
		t, err := parseSince(s)
		if err != nil {
			return fmt.Errorf("until: %w", err)
		}
		opt.Until = t
	}
	app, id := r.PathValue("app"), r.PathValue("id")
	if _, err := h.svc.Get(app, id); err != nil {
		return err
	}
	switch q.Get("format") {
	case "ndjson":
		st := NewStream(w)
		err := h.svc.Logs(r.Context(), app, id, opt, func(e logs.Entry) error {
			return st.Send(types.NewLogLine(e.Data, string(e.Stream), e.Time))
		})
		if err != nil && r.Context().Err() == nil {
			return st.Fail(err)
		}
		return nil
	case "", "raw":
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		_ = rc.Flush()
		return h.svc.Logs(r.Context(), app, id, opt, func(e logs.Entry) error {
			if _, err := w.Write(e.Data); err != nil {
				return err
			}
			return rc.Flush()
		})
	}
	return fmt.Errorf("format %q: want raw or ndjson: %w", q.Get("format"), errdefs.ErrInvalidArgument)
}

// parseSince takes an RFC 3339 time, a Unix time or a duration ago ("10m").
func parseSince(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("since %q: want RFC 3339, Unix seconds or a duration like 10m: %w", s, errdefs.ErrInvalidArgument)
}
