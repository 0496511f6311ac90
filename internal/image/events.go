package image

import (
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Event actions: what happened to an image in the cache.
const (
	EventPull   = "pull"   // Ref was pulled as ID
	EventPush   = "push"   // Ref (ID) was pushed
	EventTag    = "tag"    // Ref now names ID
	EventUntag  = "untag"  // Ref no longer names ID
	EventDelete = "delete" // ID left the cache
	EventLoad   = "load"   // ID came from an archive
	EventSave   = "save"   // ID was written to an archive
)

// Event is one change to the image cache (or a use of it: push, save), as
// Subscribe delivers it. Ref is a canonical reference, empty when the
// action concerns the image as such (delete, load, save).
type Event struct {
	Action string    `json:"action"`
	ID     v1.Hash   `json:"id"`
	Ref    string    `json:"ref,omitempty"`
	Time   time.Time `json:"time"`
}

// recentEvents is how many past events Recent keeps (Docker keeps a
// bounded in-memory log for `docker events --since` too).
const recentEvents = 256

// eventBus fans image events out to subscribers; a subscriber that does
// not keep up loses events rather than blocking the store.
type eventBus struct {
	mu     sync.Mutex
	subs   map[chan Event]struct{}
	recent []Event
}

// Subscribe returns a channel of the store's events from now on and a
// function that ends the subscription (and closes the channel).
func (s *Store) Subscribe() (<-chan Event, func()) {
	b := &s.events
	ch := make(chan Event, 256)
	b.mu.Lock()
	if b.subs == nil {
		b.subs = map[chan Event]struct{}{}
	}
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs, ch)
			b.mu.Unlock()
			close(ch)
		})
	}
}

// Recent returns the retained events at or after since, oldest first.
func (s *Store) Recent(since time.Time) []Event {
	b := &s.events
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Event
	for _, e := range b.recent {
		if !e.Time.Before(since) {
			out = append(out, e)
		}
	}
	return out
}

func (s *Store) emit(action string, id v1.Hash, ref string) {
	e := Event{Action: action, ID: id, Ref: ref, Time: time.Now()}
	b := &s.events
	b.mu.Lock()
	defer b.mu.Unlock()
	b.recent = append(b.recent, e)
	if len(b.recent) > recentEvents {
		b.recent = append(b.recent[:0:0], b.recent[len(b.recent)-recentEvents:]...)
	}
	for ch := range b.subs {
		select {
		case ch <- e:
		default:
		}
	}
}
