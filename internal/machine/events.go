package machine

import (
	"sync"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
)

// bus fans events out to subscribers (GET /v1/events, wait). A subscriber
// that does not keep up loses events rather than blocking the lifecycle;
// it sees Dropped set on the next event it gets.
type bus struct {
	mu   sync.Mutex
	subs map[*sub]struct{}
}

type sub struct {
	ch     chan types.Event
	filter func(types.Event) bool
}

func newBus() *bus { return &bus{subs: map[*sub]struct{}{}} }

// subscribe returns a channel of events matching filter (nil: all) and a
// cancel function that closes it.
func (b *bus) subscribe(filter func(types.Event) bool) (<-chan types.Event, func()) {
	s := &sub{ch: make(chan types.Event, 256), filter: filter}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs, s)
			b.mu.Unlock()
			close(s.ch)
		})
	}
}

func (b *bus) publish(e types.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		if s.filter != nil && !s.filter(e) {
			continue
		}
		select {
		case s.ch <- e:
		default:
		}
	}
}

// GuestViolation reports that machine id's guest broke the control
// protocol (it sent past a flow-control window, or frames the host never
// takes): the host closed that stream, or after repeated violations the
// connection. Subscribers get a "guest_violation" event with the reason; it
// is not kept in the machine's record, since it may come in the middle of
// any lifecycle step.
func (m *Manager) GuestViolation(id string, err error) {
	m.mu.Lock()
	mc, ok := m.machines[id]
	var e types.Event
	if ok {
		e = types.Event{Type: "guest_violation", MachineID: id, App: mc.App, State: mc.State, Status: err.Error(), Time: time.Now().UTC()}
	}
	m.mu.Unlock()
	if ok {
		m.bus.publish(e)
	}
}
