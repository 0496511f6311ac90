package registry

import (
	"context"
	"errors"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/registry/gc"
)

// gcLoop runs GC every cfg.GCInterval until ctx is done. Replicas sharing
// a database each run it; the advisory lock lets one collect at a time,
// and a replica that finds it held skips its turn.
func (s *Server) gcLoop(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(s.cfg.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rep, err := GC(ctx, s.cfg, s.store, gc.Options{Log: s.log})
		switch {
		case errors.Is(err, errdefs.ErrConflict):
			s.log.Debug("registry gc skipped: another replica is collecting")
		case err != nil && ctx.Err() == nil:
			s.log.Warn("registry gc failed", "err", err)
		case err == nil:
			s.log.Info("registry gc", "blobs_deleted", rep.BlobsDeleted, "bytes_freed", rep.BytesFreed, "links_removed", rep.LinksRemoved)
		}
	}
}
