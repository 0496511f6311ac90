package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// TestGCLockOneHolder: on both engines, a second store on the same
// database (another replica) cannot take the gc lock while the first
// holds it, gets it once released, and a holder that goes away (its
// connection closed, as when its process dies) frees it.
func TestGCLockOneHolder(t *testing.T) {
	for engine, s := range openTestStores(t) {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			other, err := Open(ctx, s.dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = other.Close() }()
			unlock, err := s.TryGCLock(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := other.TryGCLock(ctx); !errors.Is(err, errdefs.ErrConflict) {
				t.Fatalf("second holder: %v, want a conflict", err)
			}
			unlock()
			unlockOther, err := other.TryGCLock(ctx)
			if err != nil {
				t.Fatalf("after release: %v", err)
			}
			if _, err := s.TryGCLock(ctx); !errors.Is(err, errdefs.ErrConflict) {
				t.Fatalf("while the other holds it: %v", err)
			}
			if engine == "postgres" {
				// The holder's session ends, as when its process is killed.
				var n int
				if err := s.db.QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1`, gcLockKey).Scan(&n); err != nil || n != 1 {
					t.Fatalf("end the holder's session: %d %v", n, err)
				}
			} else {
				unlockOther()
			}
			// The server ends a terminated session shortly after.
			var again func()
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				if again, err = s.TryGCLock(ctx); err == nil || time.Now().After(deadline) {
					break
				}
			}
			if err != nil {
				t.Fatalf("after the holder went away: %v", err)
			}
			again()
		})
	}
}
