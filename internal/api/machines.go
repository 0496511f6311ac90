package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/machine"
)

// The Machines API, shaped like Fly's (docs/api.md has the reference):
//
//	POST   /v1/apps/{app}/machines                  machine.CreateRequest → machine.Machine
//	GET    /v1/apps/{app}/machines[?all=0]          → []machine.Machine (all states unless all=0)
//	GET    /v1/machines[?all=0]                     → []machine.Machine of every app
//	GET    /v1/apps/{app}/machines/{id}             → machine.Machine (id, id prefix or name)
//	POST   /v1/apps/{app}/machines/{id}             UpdateRequest → machine.Machine (new version)
//	POST   /v1/apps/{app}/machines/{id}/start       → machine.Machine
//	POST   /v1/apps/{app}/machines/{id}/stop        StopRequest → machine.Machine
//	POST   /v1/apps/{app}/machines/{id}/restart     StopRequest → machine.Machine
//	POST   /v1/apps/{app}/machines/{id}/signal      SignalRequest
//	GET    /v1/apps/{app}/machines/{id}/wait?state=stopped&timeout=60 → machine.Machine
//	DELETE /v1/apps/{app}/machines/{id}[?force=true]
//	POST   /v1/apps/{app}/machines/{id}/rename      RenameRequest → machine.Machine
//	GET    /v1/apps/{app}/machines/{id}/versions    → []machine.Config
//	GET    /v1/apps/{app}/machines/{id}/stats       → machine.Stats
//	POST   /v1/apps/{app}/machines/{id}/exec        machine.ExecRequest → ExecResult, or with
//	                                                Upgrade: ferry-stream, the exec frame protocol
//	GET    /v1/apps/{app}/machines/{id}/logs?follow=1&tail=N&since=T&format=raw|ndjson
//	GET    /v1/events[?app=A&machine=ID]            NDJSON of machine.Event

// MachineService is what the machine handlers need (a *machine.Manager).
type MachineService interface {
	Create(ctx context.Context, app string, req machine.CreateRequest) (*machine.Machine, error)
	List(app string, all bool) []*machine.Machine
	Get(app, ref string) (*machine.Machine, error)
	Update(ctx context.Context, app, ref string, cfg machine.Config) (*machine.Machine, error)
	Start(ctx context.Context, app, ref string) (*machine.Machine, error)
	Stop(ctx context.Context, app, ref string, opt machine.StopOptions) (*machine.Machine, error)
	Restart(ctx context.Context, app, ref string, opt machine.StopOptions) (*machine.Machine, error)
	Signal(ctx context.Context, app, ref string, sig syscall.Signal) error
	Wait(ctx context.Context, app, ref string, state machine.State, timeout time.Duration) (*machine.Machine, error)
	Destroy(ctx context.Context, app, ref string, force bool) error
	Rename(ctx context.Context, app, ref, name string) (*machine.Machine, error)
	Versions(app, ref string) ([]machine.Config, error)
	Stats(app, ref string, interval time.Duration) (*machine.Stats, error)
	Exec(ctx context.Context, app, ref string, req machine.ExecRequest, stdio machine.ExecIO) (int, error)
	Logs(ctx context.Context, app, ref string, opt machine.LogOptions, fn func([]byte) error) error
	Subscribe(app, id string) (<-chan machine.Event, func())
}

var _ MachineService = (*machine.Manager)(nil)

// UpdateRequest is POST /v1/apps/{app}/machines/{id}.
type UpdateRequest struct {
	Config machine.Config `json:"config"`
}

// StopRequest is the body of stop and restart. Signal is a name (SIGTERM,
// TERM) or number; Timeout is a Go duration ("10s") or seconds.
type StopRequest struct {
	Signal  string `json:"signal,omitempty"`
	Timeout string `json:"timeout,omitempty"`
}

// SignalRequest is the body of signal.
type SignalRequest struct {
	Signal string `json:"signal"`
}

// RenameRequest is the body of rename.
type RenameRequest struct {
	Name string `json:"name"`
}

// ExecResult is the reply of a non-streaming exec (Fly's shape).
type ExecResult struct {
	ExitCode int    `json:"exit_code"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
}

// LogLine is one value of an NDJSON log stream.
type LogLine struct {
	Data string `json:"data"`
}

// RegisterMachines adds the Machines API routes to s.
func RegisterMachines(s *Server, svc MachineService) {
	h := machineHandlers{svc}
	base := "/v1/apps/{app}/machines"
	s.Handle("POST "+base, h.create)
	s.Handle("GET "+base, h.list)
	s.Handle("GET /v1/machines", h.list)
	s.Handle("GET "+base+"/{id}", h.get)
	s.Handle("POST "+base+"/{id}", h.update)
	s.Handle("POST "+base+"/{id}/start", h.start)
	s.Handle("POST "+base+"/{id}/stop", h.stop)
	s.Handle("POST "+base+"/{id}/restart", h.restart)
	s.Handle("POST "+base+"/{id}/signal", h.signal)
	s.Handle("GET "+base+"/{id}/wait", h.wait)
	s.Handle("DELETE "+base+"/{id}", h.destroy)
	s.Handle("POST "+base+"/{id}/rename", h.rename)
	s.Handle("GET "+base+"/{id}/versions", h.versions)
	s.Handle("GET "+base+"/{id}/stats", h.stats)
	s.Handle("POST "+base+"/{id}/exec", h.exec)
	s.Handle("GET "+base+"/{id}/logs", h.logs)
	s.Handle("GET /v1/events", h.events)
}

type machineHandlers struct{ svc MachineService }

func (h machineHandlers) create(w http.ResponseWriter, r *http.Request) error {
	var req machine.CreateRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	m, err := h.svc.Create(r.Context(), r.PathValue("app"), req)
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, m)
}

func (h machineHandlers) list(w http.ResponseWriter, r *http.Request) error {
	all := r.URL.Query().Get("all") != "0" && r.URL.Query().Get("all") != "false"
	list := h.svc.List(r.PathValue("app"), all)
	if list == nil {
		list = []*machine.Machine{}
	}
	return WriteJSON(w, http.StatusOK, list)
}

func (h machineHandlers) get(w http.ResponseWriter, r *http.Request) error {
	m, err := h.svc.Get(r.PathValue("app"), r.PathValue("id"))
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, m)
}

func (h machineHandlers) update(w http.ResponseWriter, r *http.Request) error {
	var req UpdateRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	m, err := h.svc.Update(r.Context(), r.PathValue("app"), r.PathValue("id"), req.Config)
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, m)
}

func (h machineHandlers) start(w http.ResponseWriter, r *http.Request) error {
	m, err := h.svc.Start(r.Context(), r.PathValue("app"), r.PathValue("id"))
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, m)
}

func (h machineHandlers) stopOptions(r *http.Request) (machine.StopOptions, error) {
	var req StopRequest
	if r.ContentLength != 0 {
		if err := DecodeJSON(r, &req); err != nil {
			return machine.StopOptions{}, err
		}
	}
	q := r.URL.Query() // Fly also takes them as query parameters
	if req.Signal == "" {
		req.Signal = q.Get("signal")
	}
	if req.Timeout == "" {
		req.Timeout = q.Get("timeout")
	}
	var opt machine.StopOptions
	var err error
	if req.Signal != "" {
		if opt.Signal, err = ParseSignal(req.Signal); err != nil {
			return opt, err
		}
	}
	if req.Timeout != "" {
		if opt.Timeout, err = parseTimeout("timeout", req.Timeout); err != nil {
			return opt, err
		}
	}
	return opt, nil
}

func (h machineHandlers) stop(w http.ResponseWriter, r *http.Request) error {
	opt, err := h.stopOptions(r)
	if err != nil {
		return err
	}
	m, err := h.svc.Stop(r.Context(), r.PathValue("app"), r.PathValue("id"), opt)
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, m)
}

func (h machineHandlers) restart(w http.ResponseWriter, r *http.Request) error {
	opt, err := h.stopOptions(r)
	if err != nil {
		return err
	}
	m, err := h.svc.Restart(r.Context(), r.PathValue("app"), r.PathValue("id"), opt)
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, m)
}

func (h machineHandlers) signal(w http.ResponseWriter, r *http.Request) error {
	var req SignalRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	sig, err := ParseSignal(req.Signal)
	if err != nil {
		return err
	}
	if err := h.svc.Signal(r.Context(), r.PathValue("app"), r.PathValue("id"), sig); err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func (h machineHandlers) wait(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	state := machine.StateStarted
	if s := q.Get("state"); s != "" {
		var ok bool
		if state, ok = machine.ParseState(s); !ok {
			return fmt.Errorf("state %q: want created, started, stopped, failed or destroyed: %w", s, errdefs.ErrInvalidArgument)
		}
	}
	timeout := 60 * time.Second
	if t := q.Get("timeout"); t != "" {
		var err error
		if timeout, err = parseTimeout("timeout", t); err != nil {
			return err
		}
	}
	m, err := h.svc.Wait(r.Context(), r.PathValue("app"), r.PathValue("id"), state, timeout)
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, m)
}

func (h machineHandlers) destroy(w http.ResponseWriter, r *http.Request) error {
	force, _ := strconv.ParseBool(r.URL.Query().Get("force"))
	if err := h.svc.Destroy(r.Context(), r.PathValue("app"), r.PathValue("id"), force); err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func (h machineHandlers) rename(w http.ResponseWriter, r *http.Request) error {
	var req RenameRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	m, err := h.svc.Rename(r.Context(), r.PathValue("app"), r.PathValue("id"), req.Name)
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, m)
}

func (h machineHandlers) versions(w http.ResponseWriter, r *http.Request) error {
	v, err := h.svc.Versions(r.PathValue("app"), r.PathValue("id"))
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, v)
}

func (h machineHandlers) stats(w http.ResponseWriter, r *http.Request) error {
	st, err := h.svc.Stats(r.PathValue("app"), r.PathValue("id"), 200*time.Millisecond)
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, st)
}

func (h machineHandlers) events(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	ch, cancel := h.svc.Subscribe(q.Get("app"), q.Get("machine"))
	defer cancel()
	st := NewStream(w)
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				return nil
			}
			if err := st.Send(e); err != nil {
				return err
			}
		case <-r.Context().Done():
			return nil
		}
	}
}

// ParseSignal accepts SIGTERM, TERM, term or 15.
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(strings.TrimPrefix(strings.ToUpper(s), "SIG"))
	if sig, ok := signals[name]; ok {
		return sig, nil
	}
	return 0, fmt.Errorf("signal %q: want a name like SIGTERM or a number: %w", s, errdefs.ErrInvalidArgument)
}

var signals = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "KILL": syscall.SIGKILL,
	"USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "TERM": syscall.SIGTERM, "STOP": syscall.SIGSTOP,
	"CONT": syscall.SIGCONT, "WINCH": syscall.SIGWINCH, "ABRT": syscall.SIGABRT, "ALRM": syscall.SIGALRM,
}

// parseTimeout takes a Go duration or a number of seconds.
func parseTimeout(field, s string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(s, 64); err == nil && n >= 0 {
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s %q: want seconds or a duration like 10s: %w", field, s, errdefs.ErrInvalidArgument)
	}
	return d, nil
}

// machinePath is the URL path of a machine sub-resource.
func machinePath(app, id, sub string) string {
	if app == "" {
		app = "default"
	}
	p := "/v1/apps/" + url.PathEscape(app) + "/machines"
	if id != "" {
		p += "/" + url.PathEscape(id)
	}
	if sub != "" {
		p += "/" + sub
	}
	return p
}
