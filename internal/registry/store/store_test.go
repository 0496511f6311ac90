package store

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/registry/store/pgtest"
)

// openTestStores returns the stores to run a test against: SQLite, and
// Postgres on a throwaway server (or FERRY_TEST_POSTGRES_DSN when set).
func openTestStores(t *testing.T, opts ...Option) map[string]*Store {
	t.Helper()
	out := map[string]*Store{}
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "r.db"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	out["sqlite"] = s
	p, err := Open(context.Background(), pgtest.DSN(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	out["postgres"] = p
	return out
}

func TestOrgsAndTokens(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	for engine, s := range openTestStores(t, WithClock(clock)) {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			if _, err := s.CreateOrg(ctx, "Bad_Name"); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("bad org name: %v", err)
			}
			if _, err := s.CreateOrg(ctx, "acme"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.CreateOrg(ctx, "acme"); !errors.Is(err, errdefs.ErrAlreadyExists) {
				t.Fatalf("duplicate org: %v", err)
			}
			tok, secret, err := s.CreateToken(ctx, "acme", NewTokenOpts{Scope: ScopePull, TTL: time.Hour, Description: "ci"})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(secret, "ferry_"+tok.ID+"_") || len(secret) < 64 {
				t.Fatalf("secret %q", secret)
			}
			got, err := s.Authenticate(ctx, secret)
			if err != nil || got.Org != "acme" || got.Scope != ScopePull {
				t.Fatalf("authenticate: %+v %v", got, err)
			}
			for _, bad := range []string{"", "ferry_", "ferry_" + tok.ID + "_", secret + "x", strings.Replace(secret, tok.ID, "000000000000", 1)} {
				if _, err := s.Authenticate(ctx, bad); !errors.Is(err, errdefs.ErrUnauthorized) {
					t.Fatalf("authenticate(%q): %v", bad, err)
				}
			}
			now = now.Add(2 * time.Hour) // expired
			if _, err := s.Authenticate(ctx, secret); !errors.Is(err, errdefs.ErrUnauthorized) {
				t.Fatalf("expired token accepted: %v", err)
			}
			tok2, secret2, _ := s.CreateToken(ctx, "acme", NewTokenOpts{})
			if err := s.RevokeToken(ctx, tok2.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Authenticate(ctx, secret2); !errors.Is(err, errdefs.ErrUnauthorized) {
				t.Fatalf("revoked token accepted: %v", err)
			}
			if err := s.RevokeToken(ctx, "nope"); !errors.Is(err, errdefs.ErrNotFound) {
				t.Fatalf("revoke unknown: %v", err)
			}
			list, err := s.Tokens(ctx, "acme")
			if err != nil || len(list) != 2 || list[1].RevokedAt.IsZero() {
				t.Fatalf("tokens: %+v %v", list, err)
			}
			// Only the hash is stored.
			var stored string
			if err := s.db.QueryRowContext(ctx, s.q(`SELECT secret_hash FROM tokens WHERE id = ?`), tok.ID).Scan(&stored); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(secret, stored) || strings.Contains(stored, secret[len(secret)-20:]) {
				t.Fatal("token secret stored in clear")
			}
			if err := s.DeleteOrg(ctx, "acme"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.TokenByID(ctx, tok.ID); !errors.Is(err, errdefs.ErrNotFound) {
				t.Fatalf("token outlived its org: %v", err)
			}
		})
	}
}

// testDSNs returns a fresh database of each engine: a SQLite path and a
// Postgres DSN (see openTestStores).
func testDSNs(t *testing.T) map[string]string {
	t.Helper()
	return map[string]string{
		"sqlite":   filepath.Join(t.TempDir(), "r.db"),
		"postgres": pgtest.DSN(t),
	}
}

func TestMigrationsAreIdempotent(t *testing.T) {
	for engine, dsn := range testDSNs(t) {
		t.Run(engine, func(t *testing.T) {
			for i := 0; i < 2; i++ {
				s, err := Open(context.Background(), dsn)
				if err != nil {
					t.Fatal(err)
				}
				var v int
				if err := s.db.QueryRow(`SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil || v != SchemaVersion() {
					t.Fatalf("schema version %d (%v), want %d", v, err, SchemaVersion())
				}
				_ = s.Close()
			}
		})
	}
}

func TestRebindForPostgres(t *testing.T) {
	s := &Store{postgres: true}
	if got := s.q(`SELECT a FROM t WHERE x = ? AND y > ?`); got != `SELECT a FROM t WHERE x = $1 AND y > $2` {
		t.Fatal(got)
	}
}

func TestReposAndActivity(t *testing.T) {
	for engine, s := range openTestStores(t) {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			o, _ := s.CreateOrg(ctx, "acme")
			for _, n := range []string{"b", "a", "c", "a"} {
				if err := s.AddRepo(ctx, o.ID, n); err != nil {
					t.Fatal(err)
				}
			}
			got, _ := s.Repos(ctx, o.ID, "a", 10)
			if strings.Join(got, ",") != "b,c" {
				t.Fatalf("repos after a: %v", got)
			}
			now := time.Now()
			other, _ := s.CreateOrg(ctx, "other")
			_ = s.TouchBlobs(ctx, now, o.ID, "sha256:aa")
			if ok, _ := s.BlobTouchedSince(ctx, o.ID, "sha256:aa", now.Add(-time.Minute)); !ok {
				t.Fatal("touch not recorded")
			}
			if ok, _ := s.BlobTouchedSince(ctx, o.ID, "sha256:aa", now.Add(time.Minute)); ok {
				t.Fatal("touch counted in a later window")
			}
			if ok, _ := s.BlobTouchedSince(ctx, other.ID, "sha256:aa", now.Add(-time.Minute)); ok {
				t.Fatal("one org's touch counted for another")
			}
			v1, _ := s.Setting(ctx, "k", func() string { return "first" })
			v2, _ := s.Setting(ctx, "k", func() string { return "second" })
			if v1 != "first" || v2 != "first" {
				t.Fatalf("setting %q %q", v1, v2)
			}
		})
	}
}

func TestConcurrentOpenMigratesOnce(t *testing.T) {
	for engine, dsn := range testDSNs(t) {
		t.Run(engine, func(t *testing.T) {
			errs := make(chan error, 4)
			for i := 0; i < 4; i++ {
				go func() {
					s, err := Open(context.Background(), dsn)
					if err == nil {
						err = s.Close()
					}
					errs <- err
				}()
			}
			for i := 0; i < 4; i++ {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestMigrateTenantRecords: a database of schema 5 (global, unverified
// aliases; org_blobs) moves to per-org records: the global aliases are
// dropped, what org_blobs knew becomes repo_blobs (sha256 digests only).
func TestMigrateTenantRecords(t *testing.T) {
	for engine, dsn := range testDSNs(t) {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			saved := migrations
			migrations = saved[:5]
			old, err := Open(ctx, dsn)
			migrations = saved
			if err != nil {
				t.Fatal(err)
			}
			o, err := old.CreateOrg(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{
				`INSERT INTO digest_aliases(alias, canonical) VALUES ('sha512:aa', 'sha256:e3')`,
				`INSERT INTO org_blobs(org_id, digest, repo, at) VALUES ('` + o.ID + `', 'sha256:bb', 'web', 1)`,
				`INSERT INTO org_blobs(org_id, digest, repo, at) VALUES ('` + o.ID + `', 'sha512:cc', 'web', 1)`,
			} {
				if _, err := old.db.ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			_ = old.Close()
			s, err := Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if repo, err := s.OrgBlobRepo(ctx, o.ID, "sha256:bb"); err != nil || repo != "web" {
				t.Fatalf("migrated blob: %q %v", repo, err)
			}
			if _, err := s.OrgBlobRepo(ctx, o.ID, "sha512:cc"); !errors.Is(err, errdefs.ErrNotFound) {
				t.Fatalf("a non-canonical record survived: %v", err)
			}
			if _, err := s.DigestAlias(ctx, o.ID, "sha512:aa"); !errors.Is(err, errdefs.ErrNotFound) {
				t.Fatalf("an unverified global alias survived: %v", err)
			}
			if got, _ := s.Org(ctx, "acme"); got.Quota != nil {
				t.Fatalf("quota after migration: %v", *got.Quota)
			}
		})
	}
}
