package rootfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/rootfs/ext4"
)

// PrepareOption configures one Prepare call.
type PrepareOption func(*prepareOptions)

type prepareOptions struct{ size int64 }

// WithSize sets the apparent size of the writable disk (scratch or
// clone); the Manager's scratch size by default.
func WithSize(n int64) PrepareOption { return func(o *prepareOptions) { o.size = n } }

// Prepare creates the root filesystem disks of machine id on base. It is
// idempotent: preparing a prepared machine with the same base and mode
// returns its disks; a different base or mode is ErrConflict.
func (m *Manager) Prepare(ctx context.Context, id string, base Base, mode Mode, opts ...PrepareOption) (Disks, error) {
	if err := validMachineID(id); err != nil {
		return Disks{}, err
	}
	if mode == "" {
		mode = ModeOverlay
	}
	if mode != ModeOverlay && mode != ModePersistent {
		return Disks{}, fmt.Errorf("rootfs mode %q: %w", mode, errdefs.ErrInvalidArgument)
	}
	o := prepareOptions{size: m.o.scratchSize}
	for _, opt := range opts {
		opt(&o)
	}
	if o.size < 16<<20 || o.size%4096 != 0 {
		return Disks{}, fmt.Errorf("disk size %d: must be a multiple of 4096 and at least 16 MiB: %w", o.size, errdefs.ErrInvalidArgument)
	}
	if !m.lockMachine(id) {
		return Disks{}, fmt.Errorf("machine %s: rootfs busy: %w", id, errdefs.ErrConflict)
	}
	defer m.unlockMachine(id)

	hex := base.Digest.Hex
	if _, err := m.Base(ctx, base.Digest); err != nil {
		return Disks{}, err
	}
	dir := m.root.Machine(id)
	name := "scratch.ext4"
	if mode == ModePersistent {
		name = "rootfs.ext4"
	}
	rec := &machineRecord{ID: id, Base: hex, Mode: mode, State: statePreparing, Writable: filepath.Join(dir, name), Size: o.size}
	var existing *machineRecord
	err := m.db.Update(func(tx *bbolt.Tx) error {
		bk, err := buckets(tx)
		if err != nil {
			return err
		}
		if existing, err = getJSON[machineRecord](bk.machines, id); err != nil || existing != nil {
			return err
		}
		// The reference to the base is recorded before any file exists.
		if b, err := getJSON[baseRecord](bk.bases, hex); err != nil || b == nil || b.State != stateReady {
			return fmt.Errorf("base %s: %w", base.Digest, errdefs.ErrNotFound)
		}
		return putJSON(bk.machines, id, rec)
	})
	if err != nil {
		return Disks{}, fmt.Errorf("machine %s: %w", id, err)
	}
	if existing != nil {
		if existing.Base != hex || existing.Mode != mode {
			return Disks{}, fmt.Errorf("machine %s already has a %s rootfs on %s: %w", id, existing.Mode, existing.Base, errdefs.ErrConflict)
		}
		if existing.State == stateReady {
			return m.disks(existing), nil
		}
		rec = existing // finish an interrupted prepare
	}
	clone, err := m.makeWritable(ctx, rec, base)
	if err != nil {
		_ = m.releaseLocked(context.WithoutCancel(ctx), id)
		return Disks{}, fmt.Errorf("machine %s: %w", id, err)
	}
	rec.State, rec.Clone = stateReady, clone
	if st, err := os.Stat(rec.Writable); err == nil {
		rec.Size = st.Size() // a persistent clone is never smaller than its base
	}
	if err := m.db.Update(func(tx *bbolt.Tx) error {
		bk, err := buckets(tx)
		if err != nil {
			return err
		}
		return putJSON(bk.machines, id, rec)
	}); err != nil {
		return Disks{}, fmt.Errorf("machine %s: record: %w", id, err)
	}
	return m.disks(rec), nil
}

func (m *Manager) disks(r *machineRecord) Disks {
	d := Disks{Mode: r.Mode, Writable: r.Writable, Size: r.Size, Clone: r.Clone}
	if r.Mode == ModeOverlay {
		d.Base = m.basePath(r.Base)
	}
	return d
}

// makeWritable creates the machine's writable disk under a temporary name
// and renames it into place.
func (m *Manager) makeWritable(ctx context.Context, rec *machineRecord, base Base) (CloneMethod, error) {
	if err := os.MkdirAll(filepath.Dir(rec.Writable), 0o700); err != nil {
		return "", err
	}
	tmp := rec.Writable + ".tmp"
	_ = os.Remove(tmp)
	var method CloneMethod
	var err error
	if rec.Mode == ModeOverlay {
		// Formatted per machine (not cloned from a template), so each
		// scratch filesystem has its own UUID; an overlay's scratch reports
		// no clone method.
		err = ext4.MakeScratch(ctx, tmp, rec.Size)
	} else {
		method, err = m.persistentClone(ctx, base.Path, tmp, rec.Size)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	if err := os.Rename(tmp, rec.Writable); err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	return method, nil
}

func (m *Manager) persistentClone(ctx context.Context, src, dst string, size int64) (CloneMethod, error) {
	method, err := cloneFile(src, dst, 0o644)
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(dst, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	err = ext4.ClearReadonly(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	st, err := os.Stat(dst)
	if err != nil {
		return "", err
	}
	if size > st.Size() {
		if err := ext4.Resize(ctx, dst, size); err != nil {
			return "", err
		}
	}
	return method, nil
}

// template returns the formatted sparse scratch template of size bytes,

// Disks returns the disks of a prepared machine, or ErrNotFound.
func (m *Manager) Disks(ctx context.Context, id string) (Disks, error) {
	var rec *machineRecord
	err := m.db.View(func(tx *bbolt.Tx) error {
		bk, err := buckets(tx)
		if err != nil {
			return err
		}
		rec, err = getJSON[machineRecord](bk.machines, id)
		return err
	})
	if err != nil {
		return Disks{}, err
	}
	if rec == nil || rec.State != stateReady {
		return Disks{}, fmt.Errorf("machine %s rootfs: %w", id, errdefs.ErrNotFound)
	}
	return m.disks(rec), nil
}

// Release removes machine id's disks and its reference to the base. It is
// idempotent: releasing an unknown machine is not an error.
func (m *Manager) Release(ctx context.Context, id string) error {
	if err := validMachineID(id); err != nil {
		return err
	}
	if !m.lockMachine(id) {
		return fmt.Errorf("machine %s: rootfs busy: %w", id, errdefs.ErrConflict)
	}
	defer m.unlockMachine(id)
	return m.releaseLocked(ctx, id)
}

func (m *Manager) releaseLocked(ctx context.Context, id string) error {
	var rec *machineRecord
	err := m.db.Update(func(tx *bbolt.Tx) error {
		bk, err := buckets(tx)
		if err != nil {
			return err
		}
		if rec, err = getJSON[machineRecord](bk.machines, id); err != nil || rec == nil {
			return err
		}
		rec.State = stateReleasing
		return putJSON(bk.machines, id, rec)
	})
	if err != nil || rec == nil {
		return err
	}
	for _, p := range []string{rec.Writable, rec.Writable + ".tmp"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("machine %s: %w", id, err)
		}
	}
	return m.db.Update(func(tx *bbolt.Tx) error {
		bk, err := buckets(tx)
		if err != nil {
			return err
		}
		return bk.machines.Delete([]byte(id))
	})
}

func (m *Manager) lockMachine(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.busy[id] {
		return false
	}
	m.busy[id] = true
	return true
}

func (m *Manager) unlockMachine(id string) {
	m.mu.Lock()
	delete(m.busy, id)
	m.mu.Unlock()
}
