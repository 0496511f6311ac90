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

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/logs"
	"github.com/ferryvm/ferry/internal/machine"
)

// The Machines API, shaped like Fly's (docs/api.md has the reference):
//
//	POST   /v1/apps/{app}/machines                  types.CreateRequest → types.Machine
//	GET    /v1/apps/{app}/machines[?all=0]          → []types.Machine (all states unless all=0)
//	GET    /v1/machines[?all=0]                     → []types.Machine of every app
//	GET    /v1/apps/{app}/machines/{id}             → types.Machine (id, id prefix or name)
//	POST   /v1/apps/{app}/machines/{id}             types.UpdateRequest → types.Machine (new version)
//	POST   /v1/apps/{app}/machines/{id}/start       → types.Machine
//	POST   /v1/apps/{app}/machines/{id}/stop        types.StopRequest → types.Machine
//	POST   /v1/apps/{app}/machines/{id}/restart     types.StopRequest → types.Machine
//	POST   /v1/apps/{app}/machines/{id}/signal      types.SignalRequest
//	GET    /v1/apps/{app}/machines/{id}/wait?state=stopped|booted&timeout=60 → types.Machine
//	DELETE /v1/apps/{app}/machines/{id}[?force=true][&volumes=true]  (volumes: its anonymous ones too)
//	POST   /v1/apps/{app}/machines/{id}/rename      types.RenameRequest → types.Machine
//	GET    /v1/apps/{app}/machines/{id}/versions    → []types.Config
//	GET    /v1/apps/{app}/machines/{id}/stats       → types.Stats
//	POST   /v1/apps/{app}/machines/{id}/exec        types.ExecRequest → types.ExecResult, or with
//	                                                Upgrade: ferry-stream, the exec frame protocol
//	GET    /v1/apps/{app}/machines/{id}/logs?follow=1&tail=N&since=T&format=raw|ndjson
//	GET    /v1/events[?app=A&machine=ID]            NDJSON of types.Event

// MachineService is what the machine handlers need (a *machine.Manager).
type MachineService interface {
	Create(ctx context.Context, app string, req types.CreateRequest) (*types.Machine, error)
	List(app string, all bool) []*types.Machine
	Get(app, ref string) (*types.Machine, error)
	Update(ctx context.Context, app, ref string, cfg types.Config) (*types.Machine, error)
	Start(ctx context.Context, app, ref string) (*types.Machine, error)
	Stop(ctx context.Context, app, ref string, opt machine.StopOptions) (*types.Machine, error)
	Restart(ctx context.Context, app, ref string, opt machine.StopOptions) (*types.Machine, error)
	Signal(ctx context.Context, app, ref string, sig syscall.Signal) error
	Wait(ctx context.Context, app, ref string, state types.State, timeout time.Duration) (*types.Machine, error)
	Destroy(ctx context.Context, app, ref string, force bool) error
	DestroyWithVolumes(ctx context.Context, app, ref string, force, anonymous bool) error
	Rename(ctx context.Context, app, ref, name string) (*types.Machine, error)
	Versions(app, ref string) ([]types.Config, error)
	Stats(app, ref string, interval time.Duration) (*types.Stats, error)
	Exec(ctx context.Context, app, ref string, req types.ExecRequest, stdio guest.ExecIO) (int, error)
	Logs(ctx context.Context, app, ref string, opt machine.LogOptions, fn func(logs.Entry) error) error
	Subscribe(app, id string) (<-chan types.Event, func())
}

var _ MachineService = (*machine.Manager)(nil)

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
	var req types.CreateRequest
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
		list = []*types.Machine{}
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
	var req types.UpdateRequest
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
	var req types.StopRequest
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
	var req types.SignalRequest
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
	state := types.StateStarted
	if s := q.Get("state"); s != "" {
		var ok bool
		if state, ok = types.ParseWait(s); !ok {
			return fmt.Errorf("state %q: want created, started, stopped, failed, destroyed or booted: %w", s, errdefs.ErrInvalidArgument)
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
	vols, _ := strconv.ParseBool(r.URL.Query().Get("volumes"))
	if err := h.svc.DestroyWithVolumes(r.Context(), r.PathValue("app"), r.PathValue("id"), force, vols); err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func (h machineHandlers) rename(w http.ResponseWriter, r *http.Request) error {
	var req types.RenameRequest
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
