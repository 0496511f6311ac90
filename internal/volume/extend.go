package volume

import (
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Extend grows volume ref of app to size bytes: the file grows (sparse: it
// costs nothing until written) and the guest grows the filesystem at the
// next attach (init, online, before the entrypoint runs), or at once when
// the machine running with it can (internal/machine GrowVolume). Data is
// never touched. NeedsRestart reports a volume a running machine mounts:
// unless that machine grows it now, it sees the new size when it next
// starts.
func (s *Store) Extend(ctx context.Context, app, ref string, size int64) (v Volume, needsRestart bool, err error) {
	size, err = CheckSize(size)
	if err != nil {
		return Volume{}, false, err
	}
	cur, err := s.Get(ctx, app, ref)
	if err != nil {
		return Volume{}, false, err
	}
	what := "extend volume " + cur.Name
	if size <= cur.SizeBytes {
		return Volume{}, false, fmt.Errorf("%s to %s: it is %s already: volumes only grow: %w", what, FormatSize(size), FormatSize(cur.SizeBytes), errdefs.ErrInvalidArgument)
	}
	if err := s.checkSpace(what, size-cur.SizeBytes); err != nil {
		return Volume{}, false, err
	}
	r, err := s.update(app, cur.ID, func(r *volumeRecord) error {
		if r.State != StateReady {
			return busy(r)
		}
		r.State, r.ExtendTo = StateExtending, size
		return nil
	})
	if err != nil {
		return Volume{}, false, fmt.Errorf("%s: %w", what, err)
	}
	s.step("extend:recorded")
	if err := s.finishExtend(r); err != nil {
		// Roll back: the file may have grown (harmless); the record keeps
		// the old size.
		_, _ = s.update(app, r.ID, func(r *volumeRecord) error {
			r.State, r.ExtendTo = StateReady, 0
			return nil
		})
		if isNoSpace(err) {
			return Volume{}, false, noSpace(what, size-cur.SizeBytes, 0, s.dir)
		}
		return Volume{}, false, fmt.Errorf("%s: %w", what, err)
	}
	s.step("extend:done")
	out, err := s.Get(ctx, app, r.ID)
	if err != nil {
		return Volume{}, false, err
	}
	s.log.Info("volume extended", "volume", out.Name, "id", out.ID, "size", FormatSize(out.SizeBytes))
	return out, slices.ContainsFunc(out.Attachments, func(a Attachment) bool { return a.Active }), nil
}

// finishExtend grows the file to r.ExtendTo and records the size.
func (s *Store) finishExtend(r *volumeRecord) error {
	p := s.DataPath(r.ID)
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.Size() < r.ExtendTo {
		if err := os.Truncate(p, r.ExtendTo); err != nil {
			return err
		}
		if err := fsyncFile(p); err != nil {
			return err
		}
	}
	s.step("extend:grown")
	_, err = s.update(r.App, r.ID, func(rec *volumeRecord) error {
		rec.Size, rec.State, rec.ExtendTo = max(rec.Size, rec.ExtendTo), StateReady, 0
		return nil
	})
	return err
}
