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

// Attach holds volume ref of app for machine while it runs, read-only or
// read-write, in one transaction: any number of read-only holders, or one
// read-write one and nobody else, so of machines racing for a volume
// exactly one wins (the others get ErrConflict). Only active attachments
// (machines running: Attach until Deactivate) count; references of other
// machines (Reference) do not. Attaching again for the same machine is a
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
			if a.Machine == machine || !a.Active {
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
			r.Attachments[i].ReadOnly, r.Attachments[i].Active = readOnly, true
		} else {
			r.Attachments = append(r.Attachments, attachRecord{Machine: machine, ReadOnly: readOnly, Active: true, Since: time.Now().UTC()})
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

// Reference records that machine mounts volume ref of app when it runs
// (an inactive attachment: no writer is claimed, nothing conflicts), so the
// volume cannot be removed from under it. An existing attachment is kept
// as it is.
func (s *Store) Reference(ctx context.Context, app, ref, machine string, readOnly bool) error {
	if machine == "" {
		return fmt.Errorf("reference volume %s: no machine: %w", ref, errdefs.ErrInvalidArgument)
	}
	_, err := s.update(app, ref, func(r *volumeRecord) error {
		if r.State != StateReady && r.State != StateExtending {
			return busy(r)
		}
		if !slices.ContainsFunc(r.Attachments, func(a attachRecord) bool { return a.Machine == machine }) {
			r.Attachments = append(r.Attachments, attachRecord{Machine: machine, ReadOnly: readOnly, Since: time.Now().UTC()})
		}
		return nil
	})
	return err
}

// Deactivate ends the active attachments of machine (it stopped): they
// stay as references.
func (s *Store) Deactivate(ctx context.Context, machine string) error {
	_, err := s.eachAttachment(func(r *volumeRecord) bool {
		changed := false
		for i := range r.Attachments {
			if r.Attachments[i].Machine == machine && r.Attachments[i].Active {
				r.Attachments[i].Active, changed = false, true
			}
		}
		return changed
	})
	return err
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

// Reconcile detaches machines not in known (their records are gone: a
// daemon killed between removing a machine and releasing its volumes) and
// deactivates those not in running (a VMM that died with the daemon, a
// host reboot).
func (s *Store) Reconcile(ctx context.Context, known, running []string) error {
	k, run := map[string]bool{}, map[string]bool{}
	for _, id := range known {
		k[id] = true
	}
	for _, id := range running {
		run[id] = true
	}
	rel, err := s.eachAttachment(func(r *volumeRecord) bool {
		n := len(r.Attachments)
		r.Attachments = slices.DeleteFunc(r.Attachments, func(a attachRecord) bool { return !k[a.Machine] })
		changed := len(r.Attachments) != n
		for i, a := range r.Attachments {
			if a.Active && !run[a.Machine] {
				r.Attachments[i].Active, changed = false, true
			}
		}
		return changed
	})
	for _, v := range rel {
		s.log.Info("volume: attachments reconciled with the machines", "volume", v.Name, "id", v.ID)
	}
	return err
}

func (s *Store) releaseWhere(drop func(machine string) bool) ([]Volume, error) {
	return s.eachAttachment(func(r *volumeRecord) bool {
		n := len(r.Attachments)
		r.Attachments = slices.DeleteFunc(r.Attachments, func(a attachRecord) bool { return drop(a.Machine) })
		return len(r.Attachments) != n
	})
}

// eachAttachment runs change on every volume record in one transaction and
// stores (and returns) those it changed.
func (s *Store) eachAttachment(change func(r *volumeRecord) bool) ([]Volume, error) {
	var out []Volume
	err := s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketVolumes).Cursor()
		var changed []*volumeRecord
		for k, v := c.First(); k != nil; k, v = c.Next() {
			r, err := decodeVolume(v)
			if err != nil {
				return fmt.Errorf("volume %s: %w", k, err)
			}
			if change(r) {
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
