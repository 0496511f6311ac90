package store

import (
	"context"
	"fmt"
)

// migrations is the schema's history: each entry runs once, in order, inside
// a transaction, and is recorded in schema_migrations. Append only.
var migrations = []string{
	// 1: organizations and their tokens.
	`CREATE TABLE orgs (
		id         TEXT PRIMARY KEY,
		name       TEXT NOT NULL UNIQUE,
		created_at BIGINT NOT NULL
	);
	CREATE TABLE tokens (
		id           TEXT PRIMARY KEY,
		org_id       TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
		secret_hash  TEXT NOT NULL,
		scope        TEXT NOT NULL,
		description  TEXT NOT NULL DEFAULT '',
		created_at   BIGINT NOT NULL,
		expires_at   BIGINT,
		revoked_at   BIGINT
	);
	CREATE INDEX tokens_org ON tokens(org_id);`,
	// 2: repositories per org (catalog) and recent blob activity (gc grace).
	`CREATE TABLE repos (
		org_id     TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
		name       TEXT NOT NULL,
		created_at BIGINT NOT NULL,
		PRIMARY KEY (org_id, name)
	);
	CREATE TABLE blob_activity (
		digest TEXT PRIMARY KEY,
		at     BIGINT NOT NULL
	);
	CREATE INDEX blob_activity_at ON blob_activity(at);`,
	// 3: server settings (the shared HTTP secret).
	`CREATE TABLE settings (
		key   TEXT PRIMARY KEY,
		value TEXT NOT NULL
	);`,
	// 4: digests of other algorithms (sha512) for manifests that
	// distribution stores under their canonical sha256.
	`CREATE TABLE digest_aliases (
		alias     TEXT PRIMARY KEY,
		canonical TEXT NOT NULL
	);`,
	// 5: which repository of an org holds a blob it uploaded, for mounts
	// that name no source repository.
	`CREATE TABLE org_blobs (
		org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
		digest TEXT NOT NULL,
		repo   TEXT NOT NULL,
		at     BIGINT NOT NULL,
		PRIMARY KEY (org_id, digest)
	);`,
	// 6: tenant isolation and limits. Digest aliases become each org's own
	// (and are verified against the bytes before they are recorded; the
	// global table's entries never were, so they are dropped). Blob activity
	// is per org: only an org that holds a blob keeps it from gc. What each
	// repository holds, with sizes (quotas), replaces org_blobs. Open upload
	// sessions (their cap). An optional quota per org.
	`DROP TABLE digest_aliases;
	CREATE TABLE org_aliases (
		org_id    TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
		alias     TEXT NOT NULL,
		canonical TEXT NOT NULL,
		PRIMARY KEY (org_id, alias)
	);
	CREATE INDEX org_aliases_canonical ON org_aliases(canonical);
	DROP TABLE blob_activity;
	CREATE TABLE org_blob_activity (
		org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
		digest TEXT NOT NULL,
		at     BIGINT NOT NULL,
		PRIMARY KEY (org_id, digest)
	);
	CREATE INDEX org_blob_activity_at ON org_blob_activity(at);
	CREATE TABLE repo_blobs (
		org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
		repo   TEXT NOT NULL,
		digest TEXT NOT NULL,
		size   BIGINT NOT NULL,
		at     BIGINT NOT NULL,
		PRIMARY KEY (org_id, repo, digest)
	);
	CREATE INDEX repo_blobs_digest ON repo_blobs(org_id, digest);
	INSERT INTO repo_blobs(org_id, repo, digest, size, at)
		SELECT org_id, repo, digest, 0, at FROM org_blobs WHERE digest LIKE 'sha256:%';
	DROP TABLE org_blobs;
	CREATE TABLE uploads (
		id         TEXT PRIMARY KEY,
		org_id     TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
		repo       TEXT NOT NULL,
		started_at BIGINT NOT NULL,
		active_at  BIGINT NOT NULL,
		bytes      BIGINT NOT NULL DEFAULT 0
	);
	CREATE INDEX uploads_org ON uploads(org_id, active_at);
	ALTER TABLE orgs ADD COLUMN quota_bytes BIGINT;`,
}

// SchemaVersion is the number of migrations this build knows.
func SchemaVersion() int { return len(migrations) }

// migrate applies pending migrations in one transaction that first takes
// the database's write lock (SQLite: immediate transactions; Postgres: an
// advisory lock), so a server and an admin command starting together do not
// both migrate.
func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if s.postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(727165)`); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
	}
	// Under the lock: Postgres's CREATE TABLE IF NOT EXISTS is not safe
	// against a concurrent one (a duplicate pg_type row).
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var have int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	for v := have + 1; v <= len(migrations); v++ {
		if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
			return fmt.Errorf("migrate to %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations(version) VALUES (?)`), v); err != nil {
			return fmt.Errorf("migrate to %d: %w", v, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
