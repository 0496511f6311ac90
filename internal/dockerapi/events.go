package dockerapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/events"

	"github.com/ferryvm/ferry/internal/api/types"
)

// Container events are the machine manager's events in Docker's words:
// one machine event may be several Docker events (a requested stop's exit
// is "die" then "stop").
func dockerActions(e types.Event) []events.Action {
	switch e.Type {
	case "create":
		return []events.Action{events.ActionCreate}
	case "started", "adopt":
		if e.Type == "adopt" {
			return nil
		}
		return []events.Action{events.ActionStart}
	case "restart":
		return []events.Action{events.ActionRestart}
	case "stop":
		return []events.Action{events.ActionKill}
	case "exit":
		if e.Exit != nil && e.Exit.RequestedStop {
			return []events.Action{events.ActionDie, events.ActionStop}
		}
		return []events.Action{events.ActionDie}
	case "fail":
		return []events.Action{events.ActionDie}
	case "destroy":
		if e.State == types.StateDestroyed {
			return []events.Action{events.ActionDestroy}
		}
	case "rename":
		return []events.Action{events.ActionRename}
	case "update":
		return []events.Action{events.ActionUpdate}
	case "health_status":
		return []events.Action{healthAction(e)}
	}
	return nil
}

// actor is a container's identity in events: its name, image and labels
// (and exit code on die), as Docker sets them.
func actor(m *types.Machine, e types.Event, a events.Action) events.Actor {
	attrs := map[string]string{}
	if m != nil {
		for k, v := range m.Config.Metadata {
			attrs[k] = v
		}
		attrs["name"], attrs["image"] = m.Name, m.Config.Image
	}
	if a == events.ActionDie {
		code := 128
		if e.Exit != nil {
			code = exitCode(e.Exit)
		}
		attrs["exitCode"] = strconv.Itoa(code)
	}
	if a == events.ActionKill {
		attrs["signal"] = strings.TrimPrefix(e.Status, "signal ")
	}
	return events.Actor{ID: containerID(e.MachineID), Attributes: attrs}
}

// GET /events?since=&until=&filters=
func (s *Server) events(w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r, "type", "container", "event", "label", "image", "scope")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var since, until time.Time
	if v := q.Get("since"); v != "" {
		if since, err = parseTime(v); err != nil {
			return err
		}
	}
	if v := q.Get("until"); v != "" {
		if until, err = parseTime(v); err != nil {
			return err
		}
	}
	ch, cancel := s.cfg.Machines.Subscribe("", "")
	defer cancel()
	// Known machines, so that events of removed ones still carry a name.
	known := map[string]*types.Machine{}
	var history []types.Event
	for _, m := range s.cfg.Machines.List("", true) {
		known[m.ID] = m
		if !since.IsZero() {
			for i := len(m.Events) - 1; i >= 0; i-- {
				if e := m.Events[i]; !e.Time.Before(since) && (until.IsZero() || e.Time.Before(until)) {
					history = append(history, e)
				}
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flush(w)
	sortEvents(history)
	emit := func(e types.Event) error {
		m := known[e.MachineID]
		if cur, err := s.cfg.Machines.Get("", e.MachineID); err == nil {
			m, known[e.MachineID] = cur, cur
		}
		for _, a := range dockerActions(e) {
			msg := events.Message{Type: events.ContainerEventType, Action: a, Actor: actor(m, e, a), Scope: "local",
				Time: e.Time.Unix(), TimeNano: e.Time.UnixNano()}
			if !eventMatches(f, msg) {
				continue
			}
			if err := writeJSONLine(w, msg); err != nil {
				return err
			}
		}
		return nil
	}
	for _, e := range history {
		if err := emit(e); err != nil {
			return nil
		}
	}
	var deadline <-chan time.Time
	if !until.IsZero() {
		t := time.NewTimer(time.Until(until))
		defer t.Stop()
		deadline = t.C
	}
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-deadline:
			return nil
		case e, ok := <-ch:
			if !ok {
				return nil
			}
			if err := emit(e); err != nil {
				return nil
			}
		}
	}
}

func eventMatches(f filters, m events.Message) bool {
	return f.match("type", func(v string) bool { return v == string(m.Type) }) &&
		f.match("event", func(v string) bool { return v == string(m.Action) || strings.HasPrefix(string(m.Action), v+":") }) &&
		f.match("container", func(v string) bool { return v == m.Actor.Attributes["name"] || strings.HasPrefix(m.Actor.ID, v) }) &&
		f.match("image", func(v string) bool { return v == m.Actor.Attributes["image"] }) &&
		f.match("scope", func(v string) bool { return v == "local" }) &&
		f.labels(m.Actor.Attributes)
}
