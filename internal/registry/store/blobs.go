package store

import (
	"context"
	"fmt"
	"time"
)

// RecordRepoBlob records that org's repository repo holds the blob (or
// manifest) digest, of size bytes: what the org is charged for, and where
// an anonymous mount finds it.
func (s *Store) RecordRepoBlob(ctx context.Context, orgID, repo, digest string, size int64) error {
	_, err := s.exec(ctx, `INSERT INTO repo_blobs(org_id, repo, digest, size, at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (org_id, repo, digest) DO UPDATE SET size = excluded.size, at = excluded.at`,
		orgID, repo, digest, size, unix(s.now()))
	if err != nil {
		return fmt.Errorf("record blob %s: %w", digest, err)
	}
	return nil
}

// OrgBlobRepo returns the repository of org that last received digest.
func (s *Store) OrgBlobRepo(ctx context.Context, orgID, digest string) (string, error) {
	var repo string
	if err := s.queryRow(ctx, `SELECT repo FROM repo_blobs WHERE org_id = ? AND digest = ? ORDER BY at DESC, repo LIMIT 1`, orgID, digest).Scan(&repo); err != nil {
		return "", notFound(err, "blob "+digest)
	}
	return repo, nil
}

// SetRepoBlobs replaces what org's repository repo is recorded to hold
// with blobs (digest → size), as gc found it, except for records made at
// or after since (blobs that arrived while gc ran).
func (s *Store) SetRepoBlobs(ctx context.Context, orgID, repo string, blobs map[string]int64, since time.Time) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("recount %s: %w", repo, err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM repo_blobs WHERE org_id = ? AND repo = ? AND at < ?`), orgID, repo, unix(since)); err != nil {
		return fmt.Errorf("recount %s: %w", repo, err)
	}
	for d, size := range blobs {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO repo_blobs(org_id, repo, digest, size, at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (org_id, repo, digest) DO UPDATE SET size = excluded.size`),
			orgID, repo, d, size, unix(since)-1); err != nil {
			return fmt.Errorf("recount %s: %w", repo, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("recount %s: %w", repo, err)
	}
	return nil
}

// ForgetBlobs drops every record of blobs gc deleted: the repositories
// holding them and the aliases naming them.
func (s *Store) ForgetBlobs(ctx context.Context, digests ...string) error {
	for _, d := range digests {
		for _, q := range []string{`DELETE FROM repo_blobs WHERE digest = ?`, `DELETE FROM org_aliases WHERE canonical = ?`} {
			if _, err := s.exec(ctx, q, d); err != nil {
				return fmt.Errorf("forget blob %s: %w", d, err)
			}
		}
	}
	return nil
}

// Usage is what an org stores: each distinct blob and manifest its
// repositories hold, counted once at its full size (whether or not another
// org stores the same bytes: sharing is never visible), plus the bytes
// received by its upload sessions started at or after uploadsSince.
func (s *Store) Usage(ctx context.Context, orgID string, uploadsSince time.Time) (int64, error) {
	var blobs, uploads int64
	if err := s.queryRow(ctx, `SELECT COALESCE(SUM(size), 0) FROM (SELECT digest, MAX(size) AS size FROM repo_blobs WHERE org_id = ? GROUP BY digest) t`, orgID).Scan(&blobs); err != nil {
		return 0, fmt.Errorf("usage: %w", err)
	}
	if err := s.queryRow(ctx, `SELECT COALESCE(SUM(bytes), 0) FROM uploads WHERE org_id = ? AND started_at >= ?`, orgID, unix(uploadsSince)).Scan(&uploads); err != nil {
		return 0, fmt.Errorf("usage: %w", err)
	}
	return blobs + uploads, nil
}
