package store

import (
	"context"
	"fmt"
)

// AddDigestAlias records that alias (e.g. a sha512 digest) names the same
// bytes as canonical (their sha256). It is a fact about content, not about
// any repository, so it grants nothing: lookups still go through the
// caller's repository.
func (s *Store) AddDigestAlias(ctx context.Context, alias, canonical string) error {
	if _, err := s.exec(ctx, `INSERT INTO digest_aliases(alias, canonical) VALUES (?, ?) ON CONFLICT (alias) DO NOTHING`, alias, canonical); err != nil {
		return fmt.Errorf("digest alias %s: %w", alias, err)
	}
	return nil
}

// DigestAlias returns the canonical digest recorded for alias.
func (s *Store) DigestAlias(ctx context.Context, alias string) (string, error) {
	var c string
	if err := s.queryRow(ctx, `SELECT canonical FROM digest_aliases WHERE alias = ?`, alias).Scan(&c); err != nil {
		return "", notFound(err, "digest "+alias)
	}
	return c, nil
}
