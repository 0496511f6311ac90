package store

import (
	"context"
	"fmt"
	"time"
)

// AddRepo records that org has a repository called name (the catalog).
func (s *Store) AddRepo(ctx context.Context, orgID, name string) error {
	_, err := s.exec(ctx, `INSERT INTO repos(org_id, name, created_at) VALUES (?, ?, ?) ON CONFLICT (org_id, name) DO NOTHING`,
		orgID, name, unix(s.now()))
	if err != nil {
		return fmt.Errorf("record repo %s: %w", name, err)
	}
	return nil
}

// RemoveRepo drops a repository from org's catalog.
func (s *Store) RemoveRepo(ctx context.Context, orgID, name string) error {
	if _, err := s.exec(ctx, `DELETE FROM repos WHERE org_id = ? AND name = ?`, orgID, name); err != nil {
		return fmt.Errorf("remove repo %s: %w", name, err)
	}
	return nil
}

// Repos lists up to n of org's repository names that sort after last.
func (s *Store) Repos(ctx context.Context, orgID, last string, n int) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT name FROM repos WHERE org_id = ? AND name > ? ORDER BY name LIMIT ?`), orgID, last, n)
	if err != nil {
		return nil, fmt.Errorf("list repos: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("list repos: %w", err)
		}
		out = append(out, name)
	}
	return out, rows.Err()
}

// TouchBlobs records that org just uploaded, linked or found the blobs
// (by their canonical digests). gc keeps an org's link to a blob touched
// by that org within its grace window; another org's activity counts for
// nothing.
func (s *Store) TouchBlobs(ctx context.Context, at time.Time, orgID string, digests ...string) error {
	for _, d := range digests {
		if _, err := s.exec(ctx, `INSERT INTO org_blob_activity(org_id, digest, at) VALUES (?, ?, ?) ON CONFLICT (org_id, digest) DO UPDATE SET at = excluded.at`,
			orgID, d, unix(at)); err != nil {
			return fmt.Errorf("touch blob %s: %w", d, err)
		}
	}
	return nil
}

// BlobTouchedSince reports whether org touched digest at or after since.
func (s *Store) BlobTouchedSince(ctx context.Context, orgID, digest string, since time.Time) (bool, error) {
	var n int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM org_blob_activity WHERE org_id = ? AND digest = ? AND at >= ?`, orgID, digest, unix(since)).Scan(&n); err != nil {
		return false, fmt.Errorf("blob activity %s: %w", digest, err)
	}
	return n > 0, nil
}

// ForgetBlobActivity drops activity records older than before.
func (s *Store) ForgetBlobActivity(ctx context.Context, before time.Time) error {
	if _, err := s.exec(ctx, `DELETE FROM org_blob_activity WHERE at < ?`, unix(before)); err != nil {
		return fmt.Errorf("prune blob activity: %w", err)
	}
	return nil
}

// Setting returns the value stored under key, first storing make()'s
// result if there is none (the first of several racing replicas wins).
func (s *Store) Setting(ctx context.Context, key string, make func() string) (string, error) {
	if _, err := s.exec(ctx, `INSERT INTO settings(key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, key, make()); err != nil {
		return "", fmt.Errorf("setting %s: %w", key, err)
	}
	var v string
	if err := s.queryRow(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v); err != nil {
		return "", fmt.Errorf("setting %s: %w", key, err)
	}
	return v, nil
}
