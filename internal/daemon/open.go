package daemon

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"go.etcd.io/bbolt"
)

// open creates the root, locks it and opens the metadata database.
func (d *daemon) open() error {
	//nolint:gosec // 0711 as Docker's data root: no listing, but VMM helpers running as other users may traverse
	if err := os.MkdirAll(d.cfg.Root, 0o711); err != nil {
		return fmt.Errorf("create root %s: %w", d.cfg.Root, err)
	}
	lock, err := lockRoot(d.root.Lock(), d.cfg.Root)
	if err != nil {
		return err
	}
	d.onClose(func() error { return lock.Close() })
	db, err := bbolt.Open(d.root.MetaDB(), 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("open metadata database %s: %w", d.root.MetaDB(), err)
	}
	d.db = db
	d.onClose(db.Close)
	return nil
}

// onClose registers fn to run at shutdown, after everything registered later.
func (d *daemon) onClose(fn func() error) { d.closers = append(d.closers, fn) }

// close runs the closers in reverse order.
func (d *daemon) close() error {
	var errs []error
	for _, fn := range slices.Backward(d.closers) {
		errs = append(errs, fn())
	}
	d.closers = nil
	return errors.Join(errs...)
}
