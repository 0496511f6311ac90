package dockerapi

import (
	"errors"
	"net/http"

	"github.com/moby/moby/api/types/container"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
)

// POST /containers/{id}/wait?condition=not-running|next-exit|removed. The
// status line goes out at once (the CLI waits before it starts the
// container); the body when the condition is met.
func (s *Server) waitContainer(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	m, err := s.container(ref)
	if err != nil {
		return err
	}
	cond := container.WaitCondition(r.URL.Query().Get("condition"))
	switch cond {
	case "", container.WaitConditionNotRunning, container.WaitConditionNextExit, container.WaitConditionRemoved:
	default:
		return invalid("invalid condition: %q", cond)
	}
	events, cancel := s.cfg.Machines.Subscribe("", m.ID)
	defer cancel()
	code := exitCode(m.LastExit)
	if cur, err := s.cfg.Machines.Get("", m.ID); errors.Is(err, errdefs.ErrNotFound) {
		return notFound("No such container: %s", ref)
	} else if err == nil {
		m = cur
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flush(w)
	done := func(code int) error { return writeJSONLine(w, container.WaitResponse{StatusCode: int64(code)}) }
	if (cond == "" || cond == container.WaitConditionNotRunning) && dockerState(m) != container.StateRunning {
		return done(code)
	}
	for {
		select {
		case <-r.Context().Done():
			return nil
		case e, ok := <-events:
			if !ok {
				return done(code)
			}
			switch e.Type {
			case "exit":
				code, m.State = exitCode(e.Exit), types.StateStopped
				if cond != container.WaitConditionRemoved {
					return done(code)
				}
			case "fail":
				if e.State == types.StateFailed && code == 0 {
					code = 128
				}
				if cond != container.WaitConditionRemoved && e.State == types.StateFailed {
					return done(code)
				}
			case "destroy":
				if e.State == types.StateDestroyed {
					if m.State == types.StateStarted && code == 0 {
						code = 137 // removed while running: killed
					}
					return done(code)
				}
			case "started":
				m.State = types.StateStarted
			}
		}
	}
}
