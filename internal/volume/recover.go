package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// recover finishes or rolls back what a killed daemon left half done:
//
//   - a volume or snapshot still creating is removed (files and record);
//   - an extend is completed (the file grown to ExtendTo: truncate is
//     idempotent, and growing loses nothing);
//   - a removal is finished;
//   - a directory no record names is moved to orphaned/ (never deleted:
//     it may be a volume whose record was lost).
func (s *Store) recover(ctx context.Context) error {
	var vols []*volumeRecord
	var snaps []*snapshotRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketVolumes).ForEach(func(k, v []byte) error {
			r, err := decodeVolume(v)
			if err != nil {
				return fmt.Errorf("volume %s: %w", k, err)
			}
			vols = append(vols, r)
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketSnapshots).ForEach(func(k, v []byte) error {
			r, err := decodeSnapshot(v)
			if err != nil {
				return fmt.Errorf("snapshot %s: %w", k, err)
			}
			snaps = append(snaps, r)
			return nil
		})
	})
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, r := range vols {
		known[r.ID] = true
		switch r.State {
		case StateCreating, StateDestroying:
			s.log.Info("volume: removing what a killed daemon left", "volume", r.Name, "id", r.ID, "state", r.State)
			if err := os.RemoveAll(s.volumeDir(r.ID)); err != nil {
				return err
			}
			if err := s.db.Update(func(tx *bolt.Tx) error { return deleteRecord(tx, r) }); err != nil {
				return err
			}
		case StateExtending:
			s.log.Info("volume: completing an interrupted extend", "volume", r.Name, "id", r.ID, "size", FormatSize(r.ExtendTo))
			if err := s.finishExtend(r); err != nil {
				return err
			}
		}
	}
	for _, r := range snaps {
		known[r.ID] = true
		if r.State == StateCreating || r.State == StateDestroying {
			if err := os.RemoveAll(s.snapshotDir(r.ID)); err != nil {
				return err
			}
			if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketSnapshots).Delete([]byte(r.ID)) }); err != nil {
				return err
			}
		}
	}
	for _, d := range []string{s.dir, filepath.Join(s.dir, snapshotsDir)} {
		ents, err := os.ReadDir(d)
		if err != nil {
			return err
		}
		for _, e := range ents {
			n := e.Name()
			if known[n] || (d == s.dir && (n == snapshotsDir || n == orphanedDir)) {
				continue
			}
			dst := filepath.Join(s.dir, orphanedDir, n)
			s.log.Warn("volume: a directory no record names; moved aside, not deleted", "dir", filepath.Join(d, n), "to", dst)
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				return err
			}
			if err := os.Rename(filepath.Join(d, n), dst); err != nil && !errors.Is(err, os.ErrExist) {
				return err
			}
		}
	}
	return nil
}
