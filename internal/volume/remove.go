package volume

import (
	"context"
	"errors"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Remove deletes volume ref of app and its data (its snapshots stay). A
// volume attached to a machine is refused with ErrConflict: remove the
// machine first.
func (s *Store) Remove(ctx context.Context, app, ref string) error {
	r, err := s.update(app, ref, func(r *volumeRecord) error {
		if len(r.Attachments) > 0 {
			return fmt.Errorf("volume %s is attached to machine %s: remove that machine first (ferry rm): %w", r.Name, r.Attachments[0].Machine, errdefs.ErrConflict)
		}
		if r.State != StateReady {
			return busy(r)
		}
		r.State = StateDestroying
		return nil
	})
	if err != nil {
		return err
	}
	s.step("remove:recorded")
	if err := os.RemoveAll(s.volumeDir(r.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove volume %s: %w", r.Name, err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return deleteRecord(tx, r) }); err != nil {
		return err
	}
	s.log.Info("volume removed", "volume", r.Name, "id", r.ID, "app", r.App)
	return nil
}

// Prune removes the volumes of app ("" every app) no machine holds: the
// anonymous ones, or all of them with all (Docker's volume prune and
// prune -a). It returns what it removed and the bytes that freed.
func (s *Store) Prune(ctx context.Context, app string, all bool) (removed []Volume, reclaimed int64, err error) {
	var cands []*volumeRecord
	err = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketVolumes).ForEach(func(k, v []byte) error {
			r, err := decodeVolume(v)
			if err != nil {
				return nil
			}
			if (app == "" || r.App == app) && len(r.Attachments) == 0 && r.State == StateReady && (all || r.Anonymous) {
				cands = append(cands, r)
			}
			return nil
		})
	})
	if err != nil {
		return nil, 0, err
	}
	for _, r := range cands {
		v := s.toVolume(r)
		if err := s.Remove(ctx, r.App, r.ID); err != nil {
			if errors.Is(err, errdefs.ErrConflict) {
				continue // attached meanwhile
			}
			return removed, reclaimed, err
		}
		removed = append(removed, v)
		reclaimed += v.AllocatedBytes
	}
	return removed, reclaimed, nil
}

// Exists reports whether volume name exists in app.
func (s *Store) Exists(app, name string) bool {
	found := false
	_ = s.db.View(func(tx *bolt.Tx) error {
		found = tx.Bucket(bucketNames).Get(nameKey(app, name)) != nil
		return nil
	})
	return found
}
