package volume

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	bolt "go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Store is the volumes of one data root.
type Store struct {
	dir        string // paths.Root.Volumes()
	db         *bolt.DB
	wrap       []byte // AES-256 key wrapping volume keys; nil: keys stored as they are
	cryptsetup string
	log        *slog.Logger
	// hook is called at each named step of a change (tests kill the
	// process there).
	hook func(step string)
}

// Option configures a Store.
type Option func(*Store)

// WithWrapKey makes new volumes' keys be stored wrapped (AES-256-GCM) by
// key, and lets the store unwrap keys wrapped by it. See WrapKeyFromFile.
func WithWrapKey(key []byte) Option { return func(s *Store) { s.wrap = key } }

// WithCryptsetup sets the cryptsetup executable (default: cryptsetup in
// PATH, then /usr/sbin/cryptsetup and /sbin/cryptsetup).
func WithCryptsetup(path string) Option { return func(s *Store) { s.cryptsetup = path } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// Layout of the volumes directory (documented in internal/paths):
//
//	<dir>/<id>/data              the volume (sparse; LUKS2 header first when encrypted)
//	<dir>/<id>/key               its key, 0600 (raw, or wrapped: wrappedMagic...)
//	<dir>/snapshots/<id>/data    a snapshot (reflink or sparse copy), and its key
//	<dir>/orphaned/<id>/         directories no record names, moved aside, never deleted
const (
	dataFile     = "data"
	keyFile      = "key"
	snapshotsDir = "snapshots"
	orphanedDir  = "orphaned"
)

// Open opens the store in dir on db, creating its buckets, and recovers
// from a daemon killed mid-change (see the package doc).
func Open(ctx context.Context, dir string, db *bolt.DB, opts ...Option) (*Store, error) {
	s := &Store{dir: dir, db: db, log: slog.Default()}
	for _, o := range opts {
		o(s)
	}
	if s.wrap != nil && len(s.wrap) != 32 {
		return nil, fmt.Errorf("volume wrap key: %d bytes, want 32: %w", len(s.wrap), errdefs.ErrInvalidArgument)
	}
	if err := os.MkdirAll(filepath.Join(dir, snapshotsDir), 0o700); err != nil {
		return nil, fmt.Errorf("volumes: %w", err)
	}
	err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketVolumes, bucketNames, bucketSnapshots} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("volume store: %w", err)
	}
	if err := s.recover(ctx); err != nil {
		return nil, fmt.Errorf("volume store: recover: %w", err)
	}
	return s, nil
}

func (s *Store) step(name string) {
	if s.hook != nil {
		s.hook(name)
	}
}

func (s *Store) volumeDir(id string) string   { return filepath.Join(s.dir, id) }
func (s *Store) snapshotDir(id string) string { return filepath.Join(s.dir, snapshotsDir, id) }

// DataPath is the file of volume id.
func (s *Store) DataPath(id string) string { return filepath.Join(s.volumeDir(id), dataFile) }

func (s *Store) snapshotPath(id string) string { return filepath.Join(s.snapshotDir(id), dataFile) }

func newID(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// getRecord finds a volume by id, unique id prefix (at least 6
// characters of the hex) or name in app.
func getRecord(tx *bolt.Tx, app, ref string) (*volumeRecord, error) {
	if ref == "" {
		return nil, fmt.Errorf("volume: no name or id given: %w", errdefs.ErrInvalidArgument)
	}
	vols := tx.Bucket(bucketVolumes)
	if id := tx.Bucket(bucketNames).Get(nameKey(app, ref)); id != nil {
		return decodeAt(vols, id)
	}
	if b := vols.Get([]byte(ref)); b != nil {
		r, err := decodeVolume(b)
		if err != nil {
			return nil, fmt.Errorf("volume %s: %w", ref, err)
		}
		if app == "" || r.App == app {
			return r, nil
		}
	}
	if strings.HasPrefix(ref, "vol_") && len(ref) >= len("vol_")+6 {
		var found *volumeRecord
		c := vols.Cursor()
		for k, v := c.Seek([]byte(ref)); k != nil && strings.HasPrefix(string(k), ref); k, v = c.Next() {
			r, err := decodeVolume(v)
			if err != nil || (app != "" && r.App != app) {
				continue
			}
			if found != nil {
				return nil, fmt.Errorf("volume id prefix %q is ambiguous: %w", ref, errdefs.ErrInvalidArgument)
			}
			found = r
		}
		if found != nil {
			return found, nil
		}
	}
	if app == "" {
		return nil, fmt.Errorf("no volume %q: %w", ref, errdefs.ErrNotFound)
	}
	return nil, fmt.Errorf("no volume %q in app %s: %w", ref, app, errdefs.ErrNotFound)
}

func decodeAt(b *bolt.Bucket, id []byte) (*volumeRecord, error) {
	v := b.Get(id)
	if v == nil {
		return nil, fmt.Errorf("volume %s: record missing: %w", id, errdefs.ErrNotFound)
	}
	r, err := decodeVolume(v)
	if err != nil {
		return nil, fmt.Errorf("volume %s: %w", id, err)
	}
	return r, nil
}

func putRecord(tx *bolt.Tx, r *volumeRecord) error {
	r.V = recordVersion
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketVolumes).Put([]byte(r.ID), b)
}

func putSnapshot(tx *bolt.Tx, r *snapshotRecord) error {
	r.V = recordVersion
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketSnapshots).Put([]byte(r.ID), b)
}

func deleteRecord(tx *bolt.Tx, r *volumeRecord) error {
	names := tx.Bucket(bucketNames)
	if id := names.Get(nameKey(r.App, r.Name)); string(id) == r.ID {
		if err := names.Delete(nameKey(r.App, r.Name)); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketVolumes).Delete([]byte(r.ID))
}

// update runs fn on the record of ref in one transaction and stores it.
func (s *Store) update(app, ref string, fn func(r *volumeRecord) error) (*volumeRecord, error) {
	var out *volumeRecord
	err := s.db.Update(func(tx *bolt.Tx) error {
		r, err := getRecord(tx, app, ref)
		if err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
		out = r.clone()
		return putRecord(tx, r)
	})
	return out, err
}

func busy(r *volumeRecord) error {
	return fmt.Errorf("volume %s is busy (%s): %w", r.Name, r.State, errdefs.ErrConflict)
}

// Get returns the volume ref (name, id or id prefix) of app ("" any app).
func (s *Store) Get(ctx context.Context, app, ref string) (Volume, error) {
	var r *volumeRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		r, err = getRecord(tx, app, ref)
		return err
	})
	if err != nil {
		return Volume{}, err
	}
	return s.toVolume(r), nil
}

func (s *Store) toVolume(r *volumeRecord) Volume {
	p := s.DataPath(r.ID)
	return r.toVolume(p, allocated(p))
}

// List returns the volumes of app ("" every app), by app and name.
func (s *Store) List(ctx context.Context, app string) ([]Volume, error) {
	var out []Volume
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketVolumes).ForEach(func(k, v []byte) error {
			r, err := decodeVolume(v)
			if err != nil {
				return fmt.Errorf("volume %s: %w", k, err)
			}
			if app == "" || r.App == app {
				out = append(out, s.toVolume(r))
			}
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].App != out[j].App {
			return out[i].App < out[j].App
		}
		return out[i].Name < out[j].Name
	})
	return out, err
}

// allocated is the bytes a file occupies on disk (0 when missing).
func allocated(p string) int64 {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		return 0
	}
	return st.Blocks * 512
}

// errNoSpace is a full host disk, as the user should read it.
func noSpace(what string, need, free int64, dir string) error {
	return fmt.Errorf("%s: needs %s but only %s is free for volumes on the filesystem of %s (free space minus what existing volumes may still fill): %w",
		what, FormatSize(need), FormatSize(max(free, 0)), dir, errdefs.ErrUnavailable)
}

// checkSpace refuses to promise need more bytes when the filesystem cannot
// hold them on top of what existing volumes may still grow into (their
// size less what they occupy): volumes are sparse, and a guest must not
// find the host disk full.
func (s *Store) checkSpace(what string, need int64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.dir, &st); err != nil {
		return fmt.Errorf("%s: statfs %s: %w", what, s.dir, err)
	}
	free := int64(st.Bavail) * st.Bsize
	var promised int64
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketVolumes).ForEach(func(k, v []byte) error {
			r, err := decodeVolume(v)
			if err != nil {
				return nil
			}
			size := max(r.Size, r.ExtendTo)
			promised += max(0, size-allocated(s.DataPath(r.ID)))
			return nil
		})
	})
	if err != nil {
		return err
	}
	if free-promised < need {
		return noSpace(what, need, free-promised, s.dir)
	}
	return nil
}

// isNoSpace reports an ENOSPC (or EDQUOT) anywhere in err's chain.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
