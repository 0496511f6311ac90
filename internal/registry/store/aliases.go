package store

import (
	"context"
	"fmt"
)

// AddDigestAlias records that, in org, alias (e.g. a sha512 digest) names
// the same bytes as canonical (their sha256). The caller verifies that
// against the bytes first. Aliases are per org, so no org can make another
// org's digest resolve to anything, nor learn that another org used one.
func (s *Store) AddDigestAlias(ctx context.Context, orgID, alias, canonical string) error {
	if _, err := s.exec(ctx, `INSERT INTO org_aliases(org_id, alias, canonical) VALUES (?, ?, ?) ON CONFLICT (org_id, alias) DO UPDATE SET canonical = excluded.canonical`,
		orgID, alias, canonical); err != nil {
		return fmt.Errorf("digest alias %s: %w", alias, err)
	}
	return nil
}

// DigestAlias returns the canonical digest org recorded for alias.
func (s *Store) DigestAlias(ctx context.Context, orgID, alias string) (string, error) {
	var c string
	if err := s.queryRow(ctx, `SELECT canonical FROM org_aliases WHERE org_id = ? AND alias = ?`, orgID, alias).Scan(&c); err != nil {
		return "", notFound(err, "digest "+alias)
	}
	return c, nil
}
