package store

import (
	"context"
	"fmt"
	"time"
)

// OpenUpload records an upload session org opened in repo.
func (s *Store) OpenUpload(ctx context.Context, id, orgID, repo string) error {
	now := unix(s.now())
	if _, err := s.exec(ctx, `INSERT INTO uploads(id, org_id, repo, started_at, active_at, bytes) VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (id) DO NOTHING`,
		id, orgID, repo, now, now); err != nil {
		return fmt.Errorf("record upload %s: %w", id, err)
	}
	return nil
}

// UploadProgress records that session id of org now holds size bytes.
func (s *Store) UploadProgress(ctx context.Context, orgID, id string, size int64) error {
	if _, err := s.exec(ctx, `UPDATE uploads SET bytes = ?, active_at = ? WHERE id = ? AND org_id = ?`, size, unix(s.now()), id, orgID); err != nil {
		return fmt.Errorf("record upload %s: %w", id, err)
	}
	return nil
}

// CloseUpload forgets session id of org (completed or cancelled).
func (s *Store) CloseUpload(ctx context.Context, orgID, id string) error {
	if _, err := s.exec(ctx, `DELETE FROM uploads WHERE id = ? AND org_id = ?`, id, orgID); err != nil {
		return fmt.Errorf("close upload %s: %w", id, err)
	}
	return nil
}

// OpenUploads counts org's upload sessions active at or after since.
func (s *Store) OpenUploads(ctx context.Context, orgID string, since time.Time) (int, error) {
	var n int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM uploads WHERE org_id = ? AND active_at >= ?`, orgID, unix(since)).Scan(&n); err != nil {
		return 0, fmt.Errorf("count uploads: %w", err)
	}
	return n, nil
}

// ForgetUploads drops sessions started before before (storage purges
// their data at that age).
func (s *Store) ForgetUploads(ctx context.Context, before time.Time) error {
	if _, err := s.exec(ctx, `DELETE FROM uploads WHERE started_at < ?`, unix(before)); err != nil {
		return fmt.Errorf("prune uploads: %w", err)
	}
	return nil
}
