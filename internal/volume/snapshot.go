package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/rootfs"
)

// CreateSnapshot copies volume ref of app: a reflink where the data root's
// filesystem has them (instant, shares extents until either side writes),
// a sparse copy otherwise. A volume attached read-write is only
// snapshotted by reflink, which is atomic and crash-consistent (what the
// guest had not yet flushed is not in it, as after a power cut); a copy of
// a file being written would be torn, so that is refused.
func (s *Store) CreateSnapshot(ctx context.Context, app, ref string) (Snapshot, error) {
	v, err := s.Get(ctx, app, ref)
	if err != nil {
		return Snapshot{}, err
	}
	what := "snapshot volume " + v.Name
	if v.State != StateReady {
		return Snapshot{}, fmt.Errorf("%s: it is %s: %w", what, v.State, errdefs.ErrConflict)
	}
	r := &snapshotRecord{ID: newID("vs_"), Volume: v.ID, VolumeName: v.Name, App: v.App, Size: v.SizeBytes,
		Encrypted: v.Encrypted, State: StateCreating, Created: time.Now().UTC()}
	if err := s.db.Update(func(tx *bolt.Tx) error { return putSnapshot(tx, r) }); err != nil {
		return Snapshot{}, fmt.Errorf("%s: %w", what, err)
	}
	s.step("snapshot:recorded")
	fail := func(err error) (Snapshot, error) {
		_ = os.RemoveAll(s.snapshotDir(r.ID))
		_ = s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketSnapshots).Delete([]byte(r.ID)) })
		if isNoSpace(err) {
			return Snapshot{}, noSpace(what, v.AllocatedBytes, 0, s.dir)
		}
		return Snapshot{}, fmt.Errorf("%s: %w", what, err)
	}
	if err := os.MkdirAll(s.snapshotDir(r.ID), 0o700); err != nil {
		return fail(err)
	}
	if v.Writer() != "" {
		if err := reflink(v.Path, s.snapshotPath(r.ID)); err != nil {
			return fail(fmt.Errorf("it is attached read-write to machine %s and the data root's filesystem cannot reflink (%v): stop that machine (or put the data root on XFS or btrfs): %w",
				v.Writer(), err, errdefs.ErrConflict))
		}
		r.Method = string(rootfs.CloneReflink)
	} else {
		m, err := rootfs.CloneFile(v.Path, s.snapshotPath(r.ID), 0o600)
		if err != nil {
			return fail(err)
		}
		r.Method = string(m)
	}
	if v.Encrypted {
		key, err := s.readKey(s.volumeDir(v.ID), v.ID, v.Name)
		if err != nil {
			return fail(err)
		}
		r.Wrapped, err = s.writeKey(s.snapshotDir(r.ID), r.ID, key)
		clear(key)
		if err != nil {
			return fail(err)
		}
	}
	if err := fsyncFile(s.snapshotPath(r.ID)); err != nil {
		return fail(err)
	}
	r.State = StateReady
	if err := s.db.Update(func(tx *bolt.Tx) error { return putSnapshot(tx, r) }); err != nil {
		return fail(err)
	}
	s.step("snapshot:done")
	s.log.Info("volume snapshot", "volume", v.Name, "snapshot", r.ID, "method", r.Method)
	return s.toSnapshot(r), nil
}

// reflink makes dst a reflink of src, or fails without copying.
func reflink(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = unix.IoctlFileClone(int(out.Fd()), int(in.Fd()))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(dst)
	}
	return err
}

func (s *Store) toSnapshot(r *snapshotRecord) Snapshot {
	p := s.snapshotPath(r.ID)
	return r.toSnapshot(p, allocated(p))
}

func (s *Store) snapshotRecord(id string) (*snapshotRecord, error) {
	var r *snapshotRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSnapshots).Get([]byte(id))
		if b == nil {
			return fmt.Errorf("no snapshot %q: %w", id, errdefs.ErrNotFound)
		}
		var err error
		r, err = decodeSnapshot(b)
		return err
	})
	return r, err
}

// Snapshots lists the snapshots of app ("" any), of volume ref when given
// (a name, or the id of a volume that may since have been removed),
// oldest first.
func (s *Store) Snapshots(ctx context.Context, app, ref string) ([]Snapshot, error) {
	volID := ""
	if ref != "" {
		if v, err := s.Get(ctx, app, ref); err == nil {
			volID = v.ID
		} else if strings.HasPrefix(ref, "vol_") {
			volID = ref
		} else {
			return nil, err
		}
	}
	var out []Snapshot
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSnapshots).ForEach(func(k, b []byte) error {
			r, err := decodeSnapshot(b)
			if err != nil {
				return fmt.Errorf("snapshot %s: %w", k, err)
			}
			if (app == "" || r.App == app) && (volID == "" || r.Volume == volID) {
				out = append(out, s.toSnapshot(r))
			}
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, err
}

// RemoveSnapshot removes snapshot id of app ("" any).
func (s *Store) RemoveSnapshot(ctx context.Context, app, id string) error {
	r, err := s.snapshotRecord(id)
	if err != nil {
		return err
	}
	if app != "" && r.App != app {
		return fmt.Errorf("no snapshot %q in app %s: %w", id, app, errdefs.ErrNotFound)
	}
	r.State = StateDestroying
	if err := s.db.Update(func(tx *bolt.Tx) error { return putSnapshot(tx, r) }); err != nil {
		return err
	}
	if err := os.RemoveAll(s.snapshotDir(r.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove snapshot %s: %w", id, err)
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketSnapshots).Delete([]byte(r.ID)) })
}
