package dockerapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/moby/moby/api/types/common"
	"github.com/moby/moby/api/types/container"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/guest"
)

// An exec instance is Docker's two-step exec (create, then start): the
// request is kept here until started, then run by the machine manager's
// Exec, the same call `ferry exec` makes. Instances are kept while their
// machine exists, at most maxExecs in all.
const maxExecs = 1024

type execInstance struct {
	id, machine string
	req         container.ExecCreateRequest
	running     bool
	exitCode    *int
	resize      chan guest.ExecEvent
}

type execs struct {
	mu      sync.Mutex
	byID    map[string]*execInstance
	order   []string
	attachR map[string]chan guest.ExecEvent // machine → its attached entrypoint's resizes
}

func newExecs() *execs {
	return &execs{byID: map[string]*execInstance{}, attachR: map[string]chan guest.ExecEvent{}}
}

func (e *execs) add(x *execInstance) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for len(e.order) >= maxExecs {
		delete(e.byID, e.order[0])
		e.order = e.order[1:]
	}
	e.byID[x.id] = x
	e.order = append(e.order, x.id)
}

func (e *execs) get(id string) (*execInstance, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.byID[id]
	return x, ok
}

// of lists the exec IDs of a machine.
func (e *execs) of(machine string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, id := range e.order {
		if e.byID[id].machine == machine {
			out = append(out, id)
		}
	}
	return out
}

func (e *execs) attachResizer(machine string) chan guest.ExecEvent {
	c := make(chan guest.ExecEvent, 8)
	e.mu.Lock()
	e.attachR[machine] = c
	e.mu.Unlock()
	return c
}

func (e *execs) dropAttachResizer(machine string, c chan guest.ExecEvent) {
	e.mu.Lock()
	if e.attachR[machine] == c {
		delete(e.attachR, machine)
	}
	e.mu.Unlock()
}

func (e *execs) resizeAttach(machine string, rows, cols int) {
	e.mu.Lock()
	c := e.attachR[machine]
	e.mu.Unlock()
	sendResize(c, rows, cols)
}

func sendResize(c chan guest.ExecEvent, rows, cols int) {
	if c == nil || rows <= 0 || cols <= 0 {
		return
	}
	select {
	case c <- guest.ExecEvent{Rows: uint16(rows), Cols: uint16(cols)}:
	default:
	}
}

// POST /containers/{id}/exec
func (s *Server) createExec(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	m, err := s.container(ref)
	if err != nil {
		return err
	}
	var req container.ExecCreateRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if len(req.Cmd) == 0 {
		return invalid("No exec command specified")
	}
	if req.Privileged {
		return invalid("exec --privileged: the exec runs as the guest's root (or --user) inside the container's own VM; there is nothing more to grant")
	}
	if m.State != types.StateStarted {
		return conflict("container %s is not running", containerID(m.ID))
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	x := &execInstance{id: hex.EncodeToString(b[:]), machine: m.ID, req: req, resize: make(chan guest.ExecEvent, 8)}
	s.execs.add(x)
	return writeJSON(w, http.StatusCreated, common.IDResponse{ID: x.id})
}

func (s *Server) execInstance(id string) (*execInstance, error) {
	x, ok := s.execs.get(id)
	if !ok {
		return nil, notFound("No such exec instance: %s", id)
	}
	return x, nil
}

// POST /exec/{id}/start
func (s *Server) startExec(w http.ResponseWriter, r *http.Request) error {
	x, err := s.execInstance(r.PathValue("id"))
	if err != nil {
		return err
	}
	var req container.ExecStartRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
	}
	s.execs.mu.Lock()
	if x.running || x.exitCode != nil {
		s.execs.mu.Unlock()
		return conflict("exec %s has already run", x.id)
	}
	x.running = true
	s.execs.mu.Unlock()
	// A container that started takes execs at once in Docker; a guest
	// still booting refuses them, so wait for it.
	if err := s.cfg.Machines.WaitBooted(r.Context(), "", x.machine); err != nil {
		s.execs.mu.Lock()
		x.running = false
		s.execs.mu.Unlock()
		return containerErr(x.machine, err)
	}
	c := x.req
	er := types.ExecRequest{Cmd: c.Cmd, Env: c.Env, User: c.User, WorkingDir: c.WorkingDir, TTY: c.Tty, Stdin: c.AttachStdin}
	if c.ConsoleSize != nil {
		er.Rows, er.Cols = int(c.ConsoleSize[0]), int(c.ConsoleSize[1])
	}
	if req.ConsoleSize != nil {
		er.Rows, er.Cols = int(req.ConsoleSize[0]), int(req.ConsoleSize[1])
	}
	finish := func(code int) {
		s.execs.mu.Lock()
		x.running, x.exitCode = false, &code
		s.execs.mu.Unlock()
	}
	if req.Detach {
		er.Stdin = false
		go func() {
			code, err := s.cfg.Machines.Exec(context.WithoutCancel(r.Context()), "", x.machine, er, guest.ExecIO{Stdout: io.Discard, Stderr: io.Discard})
			if err != nil && code == 0 {
				code = 126
			}
			finish(code)
		}()
		w.WriteHeader(http.StatusOK)
		return nil
	}
	conn, brw, err := hijack(w, r, c.Tty)
	if err != nil {
		finish(126)
		return err
	}
	defer conn.Close()
	// Not the request context: the server cancels it when the client
	// half-closes its side, which the docker CLI does without stdin.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	stdout, stderr := outputs(conn, c.Tty)
	if !c.AttachStdout {
		stdout = io.Discard
	}
	if !c.AttachStderr {
		stderr = io.Discard
	}
	stdio := guest.ExecIO{Stdout: stdout, Stderr: stderr, Events: x.resize}
	if er.Stdin {
		pr, pw := io.Pipe()
		go func() {
			_, err := io.Copy(pw, brw)
			pw.CloseWithError(err)
		}()
		stdio.Stdin = pr
	} else {
		go func() {
			if _, err := io.Copy(io.Discard, brw); err != nil {
				cancel()
			}
		}()
	}
	code, err := s.cfg.Machines.Exec(ctx, "", x.machine, er, stdio)
	if err != nil {
		if code == 0 {
			code = 126
		}
		_, _ = stderr.Write([]byte(err.Error() + "\n"))
	}
	finish(code)
	closeWrite(conn)
	return nil
}

// GET /exec/{id}/json
func (s *Server) inspectExec(w http.ResponseWriter, r *http.Request) error {
	x, err := s.execInstance(r.PathValue("id"))
	if err != nil {
		return err
	}
	s.execs.mu.Lock()
	resp := container.ExecInspectResponse{ID: x.id, Running: x.running, ExitCode: x.exitCode, OpenStdin: x.req.AttachStdin,
		OpenStdout: x.req.AttachStdout, OpenStderr: x.req.AttachStderr, ContainerID: containerID(x.machine),
		ProcessConfig: &container.ExecProcessConfig{Tty: x.req.Tty, Entrypoint: x.req.Cmd[0], Arguments: x.req.Cmd[1:], User: x.req.User}}
	s.execs.mu.Unlock()
	return writeJSON(w, http.StatusOK, resp)
}

// POST /exec/{id}/resize?h=&w=
func (s *Server) resizeExec(w http.ResponseWriter, r *http.Request) error {
	x, err := s.execInstance(r.PathValue("id"))
	if err != nil {
		return err
	}
	rows, _ := strconv.Atoi(r.URL.Query().Get("h"))
	cols, _ := strconv.Atoi(r.URL.Query().Get("w"))
	sendResize(x.resize, rows, cols)
	w.WriteHeader(http.StatusCreated)
	return nil
}
