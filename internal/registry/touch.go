package registry

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferryvm/ferry/internal/registry/store"
)

// toucher records an org's activity on blobs it holds (uploads, mounts,
// existence checks that found the blob in the org's repository) for gc's
// grace window. Requests only add to a set; a background loop writes it to
// the store every flushEvery, so the request path never waits on the DB.
type toucher struct {
	store *store.Store
	log   *slog.Logger
	mu    sync.Mutex
	set   map[touchKey]time.Time
	stop  chan struct{}
	done  chan struct{}
}

type touchKey struct{ org, digest string }

const flushEvery = 500 * time.Millisecond

// maxTouches bounds the set between flushes.
const maxTouches = 100000

func newToucher(st *store.Store, log *slog.Logger) *toucher {
	t := &toucher{store: st, log: log, set: map[touchKey]time.Time{}, stop: make(chan struct{}), done: make(chan struct{})}
	go t.loop()
	return t
}

// touch records that org just used the blob d (a canonical digest) it
// holds. Only the org that holds a blob may keep it from gc, so callers
// touch only on an answer that showed the org holds it.
func (t *toucher) touch(org, d string) {
	if d == "" || len(d) > 256 {
		return
	}
	t.mu.Lock()
	if len(t.set) < maxTouches {
		t.set[touchKey{org, d}] = time.Now()
	}
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
	t.set = map[touchKey]time.Time{}
	t.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for k, at := range set {
		if _, err := digest.Parse(k.digest); err != nil {
			continue // validated here, off the request path
		}
		if err := t.store.TouchBlobs(ctx, at, k.org, k.digest); err != nil {
			t.log.Error("registry blob activity", "err", err)
		}
	}
}

func (t *toucher) close() {
	close(t.stop)
	<-t.done
}
