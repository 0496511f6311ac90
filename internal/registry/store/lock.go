package store

import (
	"context"
	"fmt"
	"os"
	"syscall"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// gcLockKey is the Postgres advisory lock gc holds (migrations use 727165).
const gcLockKey = 727166

// TryGCLock takes the lock that lets one gc run at a time across every
// process sharing this database: on Postgres a session advisory lock
// (released when the returned function is called or the holder's
// connection drops, so a replica killed mid-gc frees it), on SQLite an
// flock on DB.gc.lock beside the database. It does not wait: when another
// process holds it, the error wraps errdefs.ErrConflict.
func (s *Store) TryGCLock(ctx context.Context) (unlock func(), err error) {
	if !s.postgres {
		return s.flockGC()
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("gc lock: %w", err)
	}
	var got bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, gcLockKey).Scan(&got); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("gc lock: %w", err)
	}
	if !got {
		_ = conn.Close()
		return nil, fmt.Errorf("gc is already running on another replica (Postgres advisory lock %d held); run it again when that one finishes: %w", gcLockKey, errdefs.ErrConflict)
	}
	return func() {
		_, _ = conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, gcLockKey)
		_ = conn.Close()
	}, nil
}

func (s *Store) flockGC() (func(), error) {
	path := s.dsn + ".gc.lock"
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("gc lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if err == syscall.EWOULDBLOCK {
			return nil, fmt.Errorf("gc is already running on this database (%s held); run it again when that one finishes: %w", path, errdefs.ErrConflict)
		}
		return nil, fmt.Errorf("gc lock %s: %w", path, err)
	}
	return func() { _ = f.Close() }, nil
}
