package mirror

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/image"
)

// Backoff bounds the wait between write-back attempts of one tag: it
// doubles from Min after each failure up to Max.
type Backoff struct{ Min, Max time.Duration }

// DefaultBackoff is the write-back's retry schedule.
var DefaultBackoff = Backoff{Min: time.Second, Max: 5 * time.Minute}

func (b Backoff) after(attempts int) time.Duration {
	d := b.Min
	for i := 1; i < attempts && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// WriteBack pushes images that were pushed to the mirror under an
// upstream name to that upstream, in the background, retrying with
// backoff. Its queue is the image store's durable upstream state, so Run
// after a restart resumes what was pending, pushing or failed.
type WriteBack struct {
	img     *image.Store
	log     *slog.Logger
	backoff Backoff
	kick    chan struct{}
}

// NewWriteBack returns a write-back over img (Run starts it).
func NewWriteBack(img *image.Store, b Backoff, log *slog.Logger) *WriteBack {
	if log == nil {
		log = slog.Default()
	}
	return &WriteBack{img: img, log: log, backoff: b, kick: make(chan struct{}, 1)}
}

// Enqueue records that the local tag name is to be pushed to target and
// wakes the worker.
func (w *WriteBack) Enqueue(ctx context.Context, name, target string) error {
	if err := w.img.SetUpstream(ctx, name, image.UpstreamState{Target: target, State: image.UpstreamPending}); err != nil {
		return err
	}
	select {
	case w.kick <- struct{}{}:
	default:
	}
	return nil
}

// Run pushes due tags until ctx ends.
func (w *WriteBack) Run(ctx context.Context) {
	for {
		next := w.pass(ctx)
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-w.kick:
		case <-t.C:
		}
		t.Stop()
	}
}

// pass pushes every due tag once and returns how long until the next is due.
func (w *WriteBack) pass(ctx context.Context) time.Duration {
	next := w.backoff.Max
	ups, err := w.img.Upstreams(ctx)
	if err != nil {
		w.log.Warn("mirror write-back: reading the queue", "err", err)
		return w.backoff.Min
	}
	for name, u := range ups {
		if ctx.Err() != nil {
			return next
		}
		if u.State == image.UpstreamDone {
			continue
		}
		if u.State == image.UpstreamFailed {
			if wait := time.Until(u.Updated.Add(w.backoff.after(u.Attempts))); wait > 0 {
				next = min(next, wait)
				continue
			}
		}
		if err := w.push(ctx, name, u); err != nil {
			next = min(next, w.backoff.after(u.Attempts+1))
		}
	}
	return next
}

func (w *WriteBack) push(ctx context.Context, name string, u image.UpstreamState) error {
	u.State, u.Done, u.Total, u.Error = image.UpstreamPushing, 0, 0, ""
	_ = w.img.SetUpstream(ctx, name, u)
	var mu sync.Mutex
	seen, done := map[v1.Hash]bool{}, map[v1.Hash]bool{}
	progress := func(p image.Progress) {
		mu.Lock()
		defer mu.Unlock()
		seen[p.Digest] = true
		if p.State == image.StateDone || p.State == image.StateExists {
			done[p.Digest] = true
		}
		v := u
		v.Done, v.Total = len(done), len(seen)
		_ = w.img.SetUpstream(ctx, name, v)
	}
	_, err := w.img.Push(ctx, name, u.Target, image.PushProgress(progress))
	mu.Lock()
	defer mu.Unlock()
	u.Done, u.Total = len(done), len(seen)
	if err != nil {
		u.State, u.Error = image.UpstreamFailed, err.Error()
		u.Attempts++
		w.log.Warn("mirror write-back failed; will retry", "image", name, "upstream", u.Target, "attempt", u.Attempts, "err", err)
	} else {
		u.State, u.Attempts = image.UpstreamDone, 0
		w.log.Info("mirror write-back done", "image", name, "upstream", u.Target)
	}
	if serr := w.img.SetUpstream(context.WithoutCancel(ctx), name, u); serr != nil && err == nil {
		return fmt.Errorf("write-back %s: %w", name, serr)
	}
	return err
}

// Push is `ferry build --push` through the mirror (build.Pusher): the
// built image is already in the store, so it is runnable now; its push
// to ref's registry is queued for the write-back. With explicit auth
// (credentials the daemon must not keep) it is pushed at once instead.
func (w *WriteBack) Push(ctx context.Context, ref string, auth authn.Authenticator, progress func(image.Progress)) (v1.Hash, error) {
	if auth != nil {
		opts := []image.PushOption{image.PushAuth(auth)}
		if progress != nil {
			opts = append(opts, image.PushProgress(progress))
		}
		return w.img.Push(ctx, ref, "", opts...)
	}
	_, d, err := w.img.Image(ctx, ref)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", ref, err)
	}
	if err := w.Enqueue(ctx, ref, ref); err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", ref, err)
	}
	return d, nil
}
