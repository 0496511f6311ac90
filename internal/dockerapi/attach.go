package dockerapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/logs"
	"github.com/ferryvm/ferry/internal/machine"
)

// POST /containers/{id}/attach?stream=&stdin=&stdout=&stderr=&logs=
//
// With stdin on a container created with OpenStdin and AttachStdin (docker
// run -i), the connection becomes the entrypoint's stdio, as `ferry run -i`
// attaches (the guest holds the entrypoint until then). Otherwise it streams
// the machine's log from its start, as `ferry run` does: each line on the
// stream it was written to (stdcopy framing without a TTY), those of the
// streams asked for.
func (s *Server) attachContainer(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	m, err := s.container(ref)
	if err != nil {
		return err
	}
	tty := m.Config.Init.TTY
	conn, brw, err := hijack(w, r, tty)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Not the request context: the server cancels it when the client
	// half-closes its side, which the docker CLI does without stdin.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	stdout, stderr := outputs(conn, tty)
	if boolParam(r, "stdin") && m.Config.Init.Attach {
		s.attachEntrypoint(ctx, m, brw, conn, stdout, stderr)
		return nil
	}
	// The client half-closes or goes away: stop streaming.
	go func() {
		if _, err := io.Copy(io.Discard, brw); err != nil {
			cancel()
		}
	}()
	out := logWriter(stdout, stderr, streamsParam(r), false)
	if !boolParam(r, "stream") {
		if boolParam(r, "logs") {
			_ = s.cfg.Machines.Logs(ctx, "", m.ID, machine.LogOptions{}, out)
		}
		return nil
	}
	if _, err := s.waitStarted(ctx, m.ID); err != nil {
		s.log.Debug("attach: wait for start", "machine", m.ID, "err", err)
		return nil
	}
	err = s.cfg.Machines.Logs(ctx, "", m.ID, machine.LogOptions{Follow: true}, out)
	s.log.Debug("attach: console ended", "machine", m.ID, "err", err)
	closeWrite(conn)
	return nil
}

// attachEntrypoint runs the attached entrypoint's stdio over conn.
func (s *Server) attachEntrypoint(ctx context.Context, m *types.Machine, in io.Reader, conn io.Closer, stdout, stderr io.Writer) {
	mc, err := s.waitStarted(ctx, m.ID)
	if err != nil || mc.State != types.StateStarted {
		return
	}
	resize := s.execs.attachResizer(m.ID)
	defer s.execs.dropAttachResizer(m.ID, resize)
	pr, pw := io.Pipe()
	go func() {
		_, err := io.Copy(pw, in)
		pw.CloseWithError(err)
	}()
	_, err = s.cfg.Machines.Exec(ctx, "", m.ID, types.ExecRequest{Entrypoint: true, TTY: m.Config.Init.TTY, Stdin: true},
		guest.ExecIO{Stdin: pr, Stdout: stdout, Stderr: stderr, Events: resize})
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, net.ErrClosed) {
		return
	}
	// The client sees why its stdio ended, on stderr as a failed exec
	// start says it; the exit code still comes from the container's wait.
	s.log.Warn("attach to entrypoint", "machine", m.ID, "err", err)
	_, _ = fmt.Fprintf(stderr, "attach to container %s: %v\n", containerID(m.ID), err)
}

// waitStarted returns the machine once it has left "created" (started, or
// already past it).
func (s *Server) waitStarted(ctx context.Context, id string) (*types.Machine, error) {
	events, cancel := s.cfg.Machines.Subscribe("", id)
	defer cancel()
	for {
		m, err := s.cfg.Machines.Get("", id)
		if err != nil {
			return nil, err
		}
		if m.State != types.StateCreated && m.State != types.StateStarting {
			return m, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-events:
		case <-time.After(time.Second):
		}
	}
}

// GET /containers/{id}/logs?follow=&stdout=&stderr=&since=&until=&timestamps=&tail=
func (s *Server) logsContainer(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	m, err := s.container(ref)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if !boolParam(r, "stdout") && !boolParam(r, "stderr") {
		return invalid("Bad parameters: you must choose at least one stream")
	}
	opt := machine.LogOptions{Follow: boolParam(r, "follow")}
	if t := q.Get("tail"); t != "" && t != "all" {
		if opt.Tail, err = atoiNonNeg(t); err != nil {
			return invalid("invalid tail %q: want a number of lines or all", t)
		}
		if opt.Tail == 0 {
			opt.Tail = -1
		}
	}
	if v := q.Get("since"); v != "" && v != "0" {
		if opt.Since, err = parseTime(v); err != nil {
			return err
		}
	}
	if v := q.Get("until"); v != "" && v != "0" {
		if opt.Until, err = parseTime(v); err != nil {
			return err
		}
	}
	tty := m.Config.Init.TTY
	ct := "application/vnd.docker.multiplexed-stream"
	if tty {
		ct = "application/vnd.docker.raw-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	flush(w)
	if opt.Tail < 0 {
		return nil // tail=0: nothing
	}
	stdout, stderr := outputs(w, tty)
	write := logWriter(stdout, stderr, streamsParam(r), boolParam(r, "timestamps"))
	_ = s.cfg.Machines.Logs(r.Context(), "", m.ID, opt, func(e logs.Entry) error {
		if err := write(e); err != nil {
			return err
		}
		flush(w)
		return nil
	})
	return nil
}

// streams are the output streams a request asked for.
type streams struct{ stdout, stderr bool }

// streamsParam reads the stdout and stderr parameters (both when neither
// is given).
func streamsParam(r *http.Request) streams {
	q := r.URL.Query()
	if !q.Has("stdout") && !q.Has("stderr") {
		return streams{true, true}
	}
	return streams{boolParam(r, "stdout"), boolParam(r, "stderr")}
}

// logWriter writes each log line to stdout or stderr as it was written in
// the machine, those of the streams wanted only, with stamps prefixed by
// the time the machine's log stored it (docker logs --timestamps).
func logWriter(stdout, stderr io.Writer, want streams, stamps bool) func(logs.Entry) error {
	return func(e logs.Entry) error {
		w := stdout
		if e.Stream == logs.Stderr {
			if !want.stderr {
				return nil
			}
			w = stderr
		} else if !want.stdout {
			return nil
		}
		b := e.Data
		if stamps {
			b = append(e.Time.UTC().AppendFormat(nil, time.RFC3339Nano), ' ')
			b = append(b, e.Data...)
		}
		_, err := w.Write(b)
		return err
	}
}
