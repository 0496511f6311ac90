package registry

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferryvm/ferry/internal/registry/store"
)

// toucher records blob activity (uploads, mounts, existence checks) for gc's
// grace window. Requests only add to a set; a background loop writes it to
// the store every flushEvery, so the request path never waits on the DB.
type toucher struct {
	store *store.Store
	log   *slog.Logger
	mu    sync.Mutex
	set   map[string]time.Time
	stop  chan struct{}
	done  chan struct{}
}

const flushEvery = 500 * time.Millisecond

func newToucher(st *store.Store, log *slog.Logger) *toucher {
	t := &toucher{store: st, log: log, set: map[string]time.Time{}, stop: make(chan struct{}), done: make(chan struct{})}
	go t.loop()
	return t
}

func (t *toucher) touch(d string) {
	if d == "" || len(d) > 256 {
		return
	}
	t.mu.Lock()
	t.set[d] = time.Now()
	t.mu.Unlock()
}

func (t *toucher) loop() {
	defer close(t.done)
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			t.flush()
		case <-t.stop:
			t.flush()
			return
		}
	}
}

func (t *toucher) flush() {
	t.mu.Lock()
	set := t.set
	t.set = map[string]time.Time{}
	t.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for d, at := range set {
		if _, err := digest.Parse(d); err != nil {
			continue // validated here, off the request path
		}
		if err := t.store.TouchBlobs(ctx, at, d); err != nil {
			t.log.Error("registry blob activity", "err", err)
		}
	}
}

func (t *toucher) close() {
	close(t.stop)
	<-t.done
}
