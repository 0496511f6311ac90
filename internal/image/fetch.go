package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/image/content"
)

// fetchAttempts bounds how often one blob is (re)requested after a broken
// transfer; each retry resumes with a Range request where the registry allows.
const fetchAttempts = 3

// stallTimeout is how long a blob transfer may go without a byte before it
// is abandoned and retried (resuming where it stopped).
var stallTimeout = 60 * time.Second

var errStalled = errors.New("no data for too long (stalled transfer)")

var bufPool = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// fetchBlobs fetches the config and layers of m that the store lacks,
// jobs at a time.
func (p *puller) fetchBlobs(ctx context.Context, c *client, m *v1.Manifest) error {
	type job struct {
		desc v1.Descriptor
		kind string
	}
	jobs := []job{{m.Config, "config"}}
	seen := map[v1.Hash]bool{m.Config.Digest: true}
	for _, l := range m.Layers {
		if !seen[l.Digest] {
			seen[l.Digest] = true
			jobs = append(jobs, job{l, "layer"})
		}
	}
	for _, j := range jobs {
		p.emit(Progress{Digest: j.desc.Digest, Kind: j.kind, Total: j.desc.Size, State: StateWaiting})
	}
	mu := &p.mu
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.s.opts.jobs)
	for _, j := range jobs {
		g.Go(func() error {
			n, added, err := p.fetchBlob(gctx, c, j.desc, j.kind)
			mu.Lock()
			defer mu.Unlock()
			p.fetched += n
			if added {
				p.added[j.desc.Digest] = true
				p.nFetch++
			} else if err == nil {
				p.nExist++
			}
			return err
		})
	}
	return g.Wait()
}

// fetchBlob makes sure blob desc is in the store, downloading it if needed.
// It returns the bytes read from the registry and whether it committed a
// new blob.
func (p *puller) fetchBlob(ctx context.Context, c *client, desc v1.Descriptor, kind string) (int64, bool, error) {
	ev := Progress{Digest: desc.Digest, Kind: kind, Total: desc.Size}
	if p.s.content.Has(desc.Digest) {
		ev.State, ev.Done = StateExists, desc.Size
		p.emit(ev)
		return 0, false, nil
	}
	w, err := p.s.content.Writer(ctx, desc.Digest, desc.Size)
	if errors.Is(err, errdefs.ErrAlreadyExists) { // another pull just committed it
		ev.State, ev.Done = StateExists, desc.Size
		p.emit(ev)
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer func() { _ = w.Close() }()
	p.mu.Lock()
	p.partials[desc.Digest] = true
	p.mu.Unlock()
	var fetched int64
	for attempt := 1; ; attempt++ {
		n, err := p.download(ctx, c, w, ev)
		fetched += n
		if err == nil {
			break
		}
		if ctx.Err() != nil || attempt >= fetchAttempts || !transient(err) {
			if !transient(err) {
				w.Abort()
			}
			if errors.Is(err, content.ErrSizeMismatch) {
				return fetched, false, fmt.Errorf("blob %s: registry sent more than the %d bytes the manifest declares (corrupt): %w", desc.Digest, desc.Size, errdefs.ErrInvalidArgument)
			}
			return fetched, false, err
		}
		p.s.opts.logger.Debug("pull: retrying blob", "digest", desc.Digest, "offset", w.Offset(), "err", err)
		select {
		case <-ctx.Done():
			return fetched, false, ctx.Err()
		case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
		}
	}
	ev.State, ev.Done = StateVerifying, desc.Size
	p.emit(ev)
	if err := w.Commit(); err != nil {
		if errors.Is(err, content.ErrSizeMismatch) {
			return fetched, false, fmt.Errorf("%w: the download was truncated; retry the pull: %w", err, errdefs.ErrUnavailable)
		}
		if errors.Is(err, content.ErrDigestMismatch) {
			return fetched, false, fmt.Errorf("%w: the registry served corrupt data; retry, or re-push the image: %w", err, errdefs.ErrInvalidArgument)
		}
		return fetched, false, err
	}
	ev.State = StateDone
	p.emit(ev)
	return fetched, true, nil
}

// download streams the rest of one blob into w, resuming at w.Offset().
func (p *puller) download(ctx context.Context, c *client, w *content.Writer, ev Progress) (int64, error) {
	off := w.Offset()
	if ev.Total >= 0 && off == ev.Total {
		return 0, nil // complete from an earlier attempt; Commit verifies
	}
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(stallTimeout, func() { cancel(errStalled) })
	defer stall.Stop()
	body, partial, err := c.blob(rctx, ev.Digest, off, ev.Total)
	if err != nil {
		if errors.Is(context.Cause(rctx), errStalled) {
			return 0, fmt.Errorf("blob %s: %w: %w", ev.Digest, errStalled, errdefs.ErrUnavailable)
		}
		return 0, err
	}
	defer func() { _ = body.Close() }()
	if off > 0 && !partial {
		if err := w.Reset(); err != nil { // registry ignored Range: start over
			return 0, err
		}
	}
	ev.State, ev.Done = StateDownloading, w.Offset()
	p.emit(ev)
	bp, ok := bufPool.Get().(*[]byte)
	if !ok {
		b := make([]byte, 1<<20)
		bp = &b
	}
	defer bufPool.Put(bp)
	buf := *bp
	var n int64
	last := ev.Done
	for {
		k, rerr := body.Read(buf)
		stall.Reset(stallTimeout)
		if k > 0 {
			if _, err := w.Write(buf[:k]); err != nil {
				p.s.bytesFetched.Add(int64(k))
				return n + int64(k), err
			}
			n += int64(k)
			ev.Done += int64(k)
			if p.progress != nil && ev.Done-last >= 512<<10 {
				last = ev.Done
				p.emit(ev)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			p.s.bytesFetched.Add(n)
			if errors.Is(context.Cause(rctx), errStalled) {
				rerr = errStalled
			}
			return n, fmt.Errorf("blob %s: download broke after %d bytes: %w: %w", ev.Digest, ev.Done, rerr, errdefs.ErrUnavailable)
		}
	}
	p.s.bytesFetched.Add(n)
	return n, nil
}

// transient reports whether a failed transfer is worth retrying.
func transient(err error) bool {
	if errors.Is(err, content.ErrDiskFull) || errors.Is(err, content.ErrSizeMismatch) || errors.Is(err, content.ErrDigestMismatch) {
		return false
	}
	return errors.Is(err, errdefs.ErrUnavailable)
}

func (p *puller) emit(ev Progress) {
	if p.progress != nil {
		ev.Ref = p.ref
		p.progress(ev)
	}
}
