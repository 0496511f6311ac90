package dockerapi

import (
	"cmp"
	"context"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/events"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/image"
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

// GET /events?since=&until=&filters=: machine events as container events
// and the image cache's as image events, merged in time order.
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
	imgs, cancelImgs := s.cfg.Images.Subscribe()
	defer cancelImgs()
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
	containerMessages := func(e types.Event) []events.Message {
		m := known[e.MachineID]
		if cur, err := s.cfg.Machines.Get("", e.MachineID); err == nil {
			m, known[e.MachineID] = cur, cur
		}
		var out []events.Message
		for _, a := range dockerActions(e) {
			out = append(out, events.Message{Type: events.ContainerEventType, Action: a, Actor: actor(m, e, a), Scope: "local",
				Time: e.Time.Unix(), TimeNano: e.Time.UnixNano()})
		}
		return out
	}
	emit := func(msgs ...events.Message) error {
		for _, msg := range msgs {
			if !eventMatches(f, msg) {
				continue
			}
			if err := writeJSONLine(w, msg); err != nil {
				return err
			}
		}
		return nil
	}
	var past []events.Message
	for _, e := range history {
		past = append(past, containerMessages(e)...)
	}
	if !since.IsZero() {
		for _, e := range s.cfg.Images.RecentEvents(since) {
			if until.IsZero() || e.Time.Before(until) {
				past = append(past, s.imageMessage(r.Context(), e))
			}
		}
	}
	slices.SortStableFunc(past, func(a, b events.Message) int { return cmp.Compare(a.TimeNano, b.TimeNano) })
	if err := emit(past...); err != nil {
		return nil
	}
	var deadline <-chan time.Time
	if !until.IsZero() {
		t := time.NewTimer(time.Until(until))
		defer t.Stop()
		deadline = t.C
	}
	for {
		var err error
		select {
		case <-r.Context().Done():
			return nil
		case <-deadline:
			return nil
		case e, ok := <-ch:
			if !ok {
				return nil
			}
			err = emit(containerMessages(e)...)
		case e, ok := <-imgs:
			if !ok {
				return nil
			}
			err = emit(s.imageMessage(r.Context(), e))
		}
		if err != nil {
			return nil
		}
	}
}

// imageMessage is an image cache event as dockerd logs it: pull and push
// are about a reference (Actor.ID the reference, name its repository), tag
// about the image (ID the image ID, name the new reference), and untag,
// delete, load and save about the image alone (both the image ID). The
// image's labels are attributes too, while it exists.
func (s *Server) imageMessage(ctx context.Context, e image.Event) events.Message {
	id, name := e.ID.String(), e.ID.String()
	switch e.Action {
	case image.EventPull, image.EventPush:
		id, name = familiar(e.Ref), familiarRepo(e.Ref)
	case image.EventTag:
		name = familiar(e.Ref)
	}
	attrs := map[string]string{}
	if e.Action != image.EventDelete && e.Action != image.EventUntag {
		if d, err := s.cfg.Images.Inspect(ctx, e.ID.String()); err == nil && d.Config != nil {
			maps.Copy(attrs, d.Config.Config.Labels)
		}
	}
	attrs["name"] = name
	return events.Message{Type: events.ImageEventType, Action: events.Action(e.Action), Actor: events.Actor{ID: id, Attributes: attrs},
		Scope: "local", Time: e.Time.Unix(), TimeNano: e.Time.UnixNano()}
}

// familiarRepo is a reference's repository in Docker's short form
// (docker.io/library/busybox:latest → busybox).
func familiarRepo(ref string) string {
	if strings.HasPrefix(ref, "sha256:") {
		return ref
	}
	ref = familiar(ref)
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		ref = ref[:i]
	}
	return ref
}

// eventMatches is dockerd's event filter: an image filter matches an
// image event's ID or name and a container event's image, with or without
// the tag.
func eventMatches(f filters, m events.Message) bool {
	imageName := m.Actor.Attributes["image"]
	if m.Type == events.ImageEventType {
		imageName = m.Actor.Attributes["name"]
	}
	return f.match("type", func(v string) bool { return v == string(m.Type) }) &&
		f.match("event", func(v string) bool { return v == string(m.Action) || strings.HasPrefix(string(m.Action), v+":") }) &&
		f.match("container", func(v string) bool { return v == m.Actor.Attributes["name"] || strings.HasPrefix(m.Actor.ID, v) }) &&
		f.match("image", func(v string) bool {
			return v == imageName || v == familiarRepo(imageName) ||
				m.Type == events.ImageEventType && (v == m.Actor.ID || v == familiarRepo(m.Actor.ID))
		}) &&
		f.match("scope", func(v string) bool { return v == "local" }) &&
		f.labels(m.Actor.Attributes)
}
