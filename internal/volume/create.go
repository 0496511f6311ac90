package volume

import (
	"context"
	"fmt"
	"maps"
	"os"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/rootfs"
)

// CreateRequest describes a new volume.
type CreateRequest struct {
	App  string
	Name string // "" for Anonymous: a generated one
	// Size in bytes; 0: DefaultSize, or the snapshot's size.
	Size int64
	// Encrypted: nil means yes (or as the snapshot is).
	Encrypted *bool
	Labels    map[string]string
	Anonymous bool
	// Snapshot makes the volume a copy of this snapshot (its id).
	Snapshot string
}

// Create makes a volume: a sparse file of the size asked (with a LUKS2
// header when encrypted) or a clone of a snapshot. It fails with
// ErrAlreadyExists for a name taken in the app and ErrUnavailable when the
// host disk cannot hold the volume; a failure leaves nothing behind.
func (s *Store) Create(ctx context.Context, req CreateRequest) (Volume, error) {
	if req.App == "" {
		return Volume{}, fmt.Errorf("create volume: no app: %w", errdefs.ErrInvalidArgument)
	}
	id := newID("vol_")
	if req.Name == "" && req.Anonymous {
		req.Name = strings.TrimPrefix(id, "vol_")
	}
	if err := ValidateName(req.Name); err != nil {
		return Volume{}, err
	}
	var snap *snapshotRecord
	if req.Snapshot != "" {
		var err error
		if snap, err = s.snapshotRecord(req.Snapshot); err != nil {
			return Volume{}, err
		}
		if snap.State != StateReady {
			return Volume{}, fmt.Errorf("snapshot %s is %s: %w", snap.ID, snap.State, errdefs.ErrConflict)
		}
	}
	enc := true
	if snap != nil {
		enc = snap.Encrypted
	}
	if req.Encrypted != nil {
		if snap != nil && *req.Encrypted != snap.Encrypted {
			return Volume{}, fmt.Errorf("snapshot %s is %s: a volume made from it is too: %w", snap.ID, map[bool]string{true: "encrypted", false: "not encrypted"}[snap.Encrypted], errdefs.ErrInvalidArgument)
		}
		enc = *req.Encrypted
	}
	size := req.Size
	switch {
	case size == 0 && snap != nil:
		size = snap.Size
	case size == 0:
		size = DefaultSize
	}
	size, err := CheckSize(size)
	if err != nil {
		return Volume{}, err
	}
	if snap != nil && size < snap.Size {
		return Volume{}, fmt.Errorf("size %s is smaller than snapshot %s (%s): volumes only grow: %w", FormatSize(size), snap.ID, FormatSize(snap.Size), errdefs.ErrInvalidArgument)
	}
	what := "create volume " + req.Name
	if err := s.checkSpace(what, size); err != nil {
		return Volume{}, err
	}
	r := &volumeRecord{ID: id, Name: req.Name, App: req.App, Size: size, Encrypted: enc, Labels: maps.Clone(req.Labels),
		Anonymous: req.Anonymous, State: StateCreating, Created: time.Now().UTC()}
	if snap != nil {
		r.Snapshot = snap.ID
	}
	if enc {
		r.UUID = newUUID()
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		names := tx.Bucket(bucketNames)
		if names.Get(nameKey(r.App, r.Name)) != nil {
			return fmt.Errorf("volume %q already exists in app %s: %w", r.Name, r.App, errdefs.ErrAlreadyExists)
		}
		if err := names.Put(nameKey(r.App, r.Name), []byte(r.ID)); err != nil {
			return err
		}
		return putRecord(tx, r)
	})
	if err != nil {
		return Volume{}, fmt.Errorf("%s: %w", what, err)
	}
	s.step("create:recorded")
	if err := s.writeVolume(ctx, r, snap); err != nil {
		s.discard(r)
		if isNoSpace(err) {
			return Volume{}, noSpace(what, size, 0, s.dir)
		}
		return Volume{}, fmt.Errorf("%s: %w", what, err)
	}
	s.step("create:written")
	out, err := s.update(r.App, r.ID, func(rec *volumeRecord) error {
		rec.State, rec.Wrapped, rec.UUID = StateReady, r.Wrapped, r.UUID
		return nil
	})
	if err != nil {
		s.discard(r)
		return Volume{}, fmt.Errorf("%s: %w", what, err)
	}
	s.step("create:done")
	s.log.Info("volume created", "volume", r.Name, "id", r.ID, "app", r.App, "size", FormatSize(r.Size), "encrypted", r.Encrypted, "snapshot", r.Snapshot)
	return s.toVolume(out), nil
}

// writeVolume makes the files of a new volume.
func (s *Store) writeVolume(ctx context.Context, r *volumeRecord, snap *snapshotRecord) error {
	dir := s.volumeDir(r.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	data := s.DataPath(r.ID)
	if snap != nil {
		if _, err := rootfs.CloneFile(s.snapshotPath(snap.ID), data, 0o600); err != nil {
			return err
		}
		if err := os.Truncate(data, r.Size); err != nil {
			return err
		}
		if snap.Encrypted {
			key, err := s.readKey(s.snapshotDir(snap.ID), snap.ID, "snapshot "+snap.ID)
			if err != nil {
				return err
			}
			defer clear(key)
			if r.Wrapped, err = s.writeKey(dir, r.ID, key); err != nil {
				return err
			}
			r.UUID = snap.UUID
		}
		return syncDir(dir)
	}
	f, err := os.OpenFile(data, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = f.Truncate(r.Size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if r.Encrypted {
		key := newKey()
		defer clear(key)
		if r.Wrapped, err = s.writeKey(dir, r.ID, key); err != nil {
			return err
		}
		s.step("create:key")
		if err := s.formatLUKS(ctx, data, r.UUID, key); err != nil {
			return err
		}
		if err := fsyncFile(data); err != nil {
			return err
		}
	}
	return syncDir(dir)
}

// discard removes a volume that failed to be made (best effort: Open
// removes what is left of a volume still recorded as creating).
func (s *Store) discard(r *volumeRecord) {
	_ = os.RemoveAll(s.volumeDir(r.ID))
	_ = s.db.Update(func(tx *bolt.Tx) error { return deleteRecord(tx, r) })
}

func fsyncFile(p string) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
