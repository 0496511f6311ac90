package rootfs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/rootfs/apply"
	"github.com/ferryvm/ferry/internal/rootfs/ext4"
)

// flight is one base build that concurrent EnsureBase calls share.
type flight struct {
	done chan struct{}
	base Base
	err  error
}

// EnsureBase returns the base of the image with manifest digest d,
// building it from img first if it does not exist. Concurrent calls for
// the same digest build it once.
func (m *Manager) EnsureBase(ctx context.Context, d v1.Hash, img v1.Image) (Base, error) {
	if b, err := m.Base(ctx, d); err == nil {
		return b, nil
	} else if !errors.Is(err, errdefs.ErrNotFound) {
		return Base{}, err
	}
	m.mu.Lock()
	f, ok := m.flights[d.Hex]
	if !ok {
		f = &flight{done: make(chan struct{})}
		m.flights[d.Hex] = f
		go func() {
			// The build outlives a cancelled caller only as long as
			// other callers wait; it uses its own context.
			f.base, f.err = m.build(context.WithoutCancel(ctx), d, img)
			m.mu.Lock()
			delete(m.flights, d.Hex)
			m.mu.Unlock()
			close(f.done)
		}()
	}
	m.mu.Unlock()
	select {
	case <-f.done:
		return f.base, f.err
	case <-ctx.Done():
		return Base{}, ctx.Err()
	}
}

// Base returns the built base of manifest digest d, or ErrNotFound.
func (m *Manager) Base(ctx context.Context, d v1.Hash) (Base, error) {
	var rec *baseRecord
	err := m.db.View(func(tx *bbolt.Tx) error {
		bk, err := buckets(tx)
		if err != nil {
			return err
		}
		rec, err = getJSON[baseRecord](bk.bases, d.Hex)
		return err
	})
	if err != nil {
		return Base{}, fmt.Errorf("base %s: %w", d, err)
	}
	if rec == nil || rec.State != stateReady {
		return Base{}, fmt.Errorf("base %s: %w", d, errdefs.ErrNotFound)
	}
	p := m.basePath(d.Hex)
	if _, err := os.Stat(p); err != nil {
		return Base{}, fmt.Errorf("base %s: file missing: %w", d, errdefs.ErrNotFound)
	}
	return Base{Digest: d, Path: p, Size: rec.Size, Created: rec.Created}, nil
}

func (m *Manager) setBase(hex string, rec *baseRecord) error {
	return m.db.Update(func(tx *bbolt.Tx) error {
		bk, err := buckets(tx)
		if err != nil {
			return err
		}
		if rec == nil {
			return bk.bases.Delete([]byte(hex))
		}
		return putJSON(bk.bases, hex, rec)
	})
}

// build records the intent, leases the image, writes the ext4 to tmp/,
// fsyncs, and renames it into bases/.
func (m *Manager) build(ctx context.Context, d v1.Hash, img v1.Image) (base Base, err error) {
	start := time.Now()
	if d.Algorithm != "sha256" || len(d.Hex) != 64 {
		return Base{}, fmt.Errorf("base %s: not a sha256 digest: %w", d, errdefs.ErrInvalidArgument)
	}
	if b, err := m.Base(ctx, d); err == nil {
		return b, nil // a build that finished just before this one started
	}
	if got, err := img.Digest(); err == nil && got != d {
		return Base{}, fmt.Errorf("base %s: image has manifest digest %s: %w", d, got, errdefs.ErrInvalidArgument)
	}
	if err := m.setBase(d.Hex, &baseRecord{Digest: d.String(), State: stateBuilding}); err != nil {
		return Base{}, fmt.Errorf("base %s: record: %w", d, err)
	}
	defer func() {
		if err != nil {
			m.undoBase(context.WithoutCancel(ctx), d.Hex)
		}
	}()
	if m.leaser != nil {
		if err := m.leaser.AddLease(ctx, baseLease(d.Hex), d); err != nil {
			return Base{}, fmt.Errorf("base %s: lease image: %w", d, err)
		}
	}
	tmp, err := os.CreateTemp(m.root.RootfsTmp(), d.Hex+"-*.ext4")
	if err != nil {
		return Base{}, fmt.Errorf("base %s: %w", d, err)
	}
	defer func() {
		tmp.Close()
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	opts := append([]apply.Option{apply.WithLimits(m.o.limits), apply.WithSpoolDir(m.root.RootfsTmp()), apply.WithLogger(m.o.log)}, m.o.applyOpts...)
	stats, err := writeBase(ctx, img, tmp, m.o.limits.OrDefaults(), opts)
	if err != nil {
		return Base{}, fmt.Errorf("base %s: %w", d, err)
	}
	if err := tmp.Sync(); err != nil {
		return Base{}, fmt.Errorf("base %s: fsync: %w", d, err)
	}
	st, err := tmp.Stat()
	if err != nil {
		return Base{}, err
	}
	if err := tmp.Chmod(0o444); err != nil {
		return Base{}, err
	}
	p := m.basePath(d.Hex)
	if err := os.Rename(tmp.Name(), p); err != nil {
		return Base{}, fmt.Errorf("base %s: %w", d, err)
	}
	syncDir(m.root.Bases())
	rec := &baseRecord{Digest: d.String(), State: stateReady, Size: st.Size(), Created: time.Now().UTC()}
	if err := m.setBase(d.Hex, rec); err != nil {
		_ = os.Remove(p)
		return Base{}, fmt.Errorf("base %s: record: %w", d, err)
	}
	m.o.log.Info("built rootfs base", "digest", d.String(), "layers", stats.Layers, "entries", stats.Entries,
		"bytes", st.Size(), "took", time.Since(start).Round(time.Millisecond))
	return Base{Digest: d, Path: p, Size: rec.Size, Created: rec.Created}, nil
}

// writeBase streams img's flattened tree into the ext4 writer, which
// reserves metadata for the most file data the limits allow and keeps
// their free-space reserve.
func writeBase(ctx context.Context, img v1.Image, out *os.File, lim apply.Limits, opts []apply.Option) (apply.Stats, error) {
	pr, pw := io.Pipe()
	var stats apply.Stats
	errc := make(chan error, 1)
	go func() {
		var err error
		stats, err = apply.Flatten(ctx, img, pw, opts...)
		_ = pw.CloseWithError(err)
		errc <- err
	}()
	berr := ext4.Build(ctx, pr, out, lim.MaxStream+lim.MaxSparse, ext4.WithMinFree(lim.MinFree))
	_ = pr.CloseWithError(errors.New("ext4 writer stopped"))
	ferr := <-errc
	if ferr != nil {
		return stats, ferr
	}
	return stats, berr
}

// undoBase removes a base's file, record and image lease.
func (m *Manager) undoBase(ctx context.Context, hex string) {
	_ = os.Remove(m.basePath(hex))
	if m.leaser != nil {
		if err := m.leaser.RemoveLease(ctx, baseLease(hex)); err != nil {
			m.o.log.Warn("release image lease", "lease", baseLease(hex), "err", err)
		}
	}
	if err := m.setBase(hex, nil); err != nil {
		m.o.log.Warn("remove base record", "base", hex, "err", err)
	}
}

// RemoveBase deletes the base of manifest digest d and releases its image
// lease. It fails with ErrConflict while a machine uses it.
func (m *Manager) RemoveBase(ctx context.Context, d v1.Hash) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.flights[d.Hex]; ok {
		return fmt.Errorf("base %s is being built: %w", d, errdefs.ErrConflict)
	}
	return m.removeBaseLocked(ctx, d.Hex)
}

// removeBaseLocked marks the base removing (so Prepare refuses it) in the
// same transaction that checks no machine uses it, then undoes it.
func (m *Manager) removeBaseLocked(ctx context.Context, hex string) error {
	err := m.db.Update(func(tx *bbolt.Tx) error {
		bk, err := buckets(tx)
		if err != nil {
			return err
		}
		rec, err := getJSON[baseRecord](bk.bases, hex)
		if err != nil {
			return err
		}
		if rec == nil {
			return fmt.Errorf("base sha256:%s: %w", hex, errdefs.ErrNotFound)
		}
		if err := bk.machines.ForEach(func(k, v []byte) error {
			var r machineRecord
			if json.Unmarshal(v, &r) == nil && r.Base == hex {
				return fmt.Errorf("base sha256:%s is used by machine %s: %w", hex, k, errdefs.ErrConflict)
			}
			return nil
		}); err != nil {
			return err
		}
		rec.State = stateRemoving
		return putJSON(bk.bases, hex, rec)
	})
	if err != nil {
		return err
	}
	m.undoBase(ctx, hex)
	return nil
}

func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		_ = f.Sync()
		f.Close()
	}
}
