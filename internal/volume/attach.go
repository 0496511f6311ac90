package volume

import (
	"context"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Attached is a volume held by a machine: what its VMM and guest need.
type Attached struct {
	Volume   Volume
	Path     string // the file to attach as a drive
	ReadOnly bool
	// Key is the LUKS2 passphrase the guest opens the volume with (nil
	// when not encrypted), already checked against the header.
	Key []byte
}

// Attach holds volume ref of app for machine, read-only or read-write, in
// one transaction: any number of read-only holders, or one read-write one
// and nobody else, so of machines racing for a volume exactly one wins
// (the others get ErrConflict). Attaching again for the same machine is a
// no-op (or changes its mode when that conflicts with nobody). The key of
// an encrypted volume is read and checked against its header first.
func (s *Store) Attach(ctx context.Context, app, ref, machine string, readOnly bool) (*Attached, error) {
	if machine == "" {
		return nil, fmt.Errorf("attach volume %s: no machine: %w", ref, errdefs.ErrInvalidArgument)
	}
	cur, err := s.Get(ctx, app, ref)
	if err != nil {
		return nil, err
	}
	var key []byte
	if cur.Encrypted {
		if key, err = s.readKey(s.volumeDir(cur.ID), cur.ID, cur.Name); err != nil {
			return nil, err
		}
		if err := checkKey(s.DataPath(cur.ID), cur.Name, key); err != nil {
			clear(key)
			return nil, err
		}
	}
	r, err := s.update(app, cur.ID, func(r *volumeRecord) error {
		if r.State != StateReady && r.State != StateExtending {
			return busy(r)
		}
		for _, a := range r.Attachments {
			if a.Machine == machine {
				continue
			}
			if !a.ReadOnly || !readOnly {
				mode := map[bool]string{true: "read-only", false: "read-write"}[a.ReadOnly]
				hint := "remove that machine first, or mount the volume read-only (:ro) in every machine"
				return fmt.Errorf("volume %s is attached to machine %s (%s): one writer at a time: %s: %w", r.Name, a.Machine, mode, hint, errdefs.ErrConflict)
			}
		}
		i := slices.IndexFunc(r.Attachments, func(a attachRecord) bool { return a.Machine == machine })
		if i >= 0 {
			r.Attachments[i].ReadOnly = readOnly
		} else {
			r.Attachments = append(r.Attachments, attachRecord{Machine: machine, ReadOnly: readOnly, Since: time.Now().UTC()})
		}
		return nil
	})
	if err != nil {
		clear(key)
		return nil, err
	}
	s.step("attach:done")
	return &Attached{Volume: s.toVolume(r), Path: s.DataPath(r.ID), ReadOnly: readOnly, Key: key}, nil
}

// Detach releases volume ref held by machine (missing is fine).
func (s *Store) Detach(ctx context.Context, app, ref, machine string) error {
	_, err := s.update(app, ref, func(r *volumeRecord) error {
		r.Attachments = slices.DeleteFunc(r.Attachments, func(a attachRecord) bool { return a.Machine == machine })
		return nil
	})
	return err
}

// Release detaches every volume machine holds and returns them (a
// machine removed with its volumes then removes the anonymous ones).
func (s *Store) Release(ctx context.Context, machine string) ([]Volume, error) {
	return s.releaseWhere(func(m string) bool { return m == machine })
}

// Reconcile detaches machines not in keep (their records are gone: a
// daemon killed between removing a machine and releasing its volumes).
func (s *Store) Reconcile(ctx context.Context, keep []string) error {
	k := map[string]bool{}
	for _, id := range keep {
		k[id] = true
	}
	rel, err := s.releaseWhere(func(m string) bool { return !k[m] })
	for _, v := range rel {
		s.log.Info("volume: released by a machine that no longer exists", "volume", v.Name, "id", v.ID)
	}
	return err
}

func (s *Store) releaseWhere(drop func(machine string) bool) ([]Volume, error) {
	var out []Volume
	err := s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketVolumes).Cursor()
		var changed []*volumeRecord
		for k, v := c.First(); k != nil; k, v = c.Next() {
			r, err := decodeVolume(v)
			if err != nil {
				return fmt.Errorf("volume %s: %w", k, err)
			}
			n := len(r.Attachments)
			r.Attachments = slices.DeleteFunc(r.Attachments, func(a attachRecord) bool { return drop(a.Machine) })
			if len(r.Attachments) != n {
				changed = append(changed, r)
			}
		}
		for _, r := range changed {
			if err := putRecord(tx, r); err != nil {
				return err
			}
			out = append(out, s.toVolume(r))
		}
		return nil
	})
	return out, err
}
