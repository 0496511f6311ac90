package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Org is an organization: a tenant with its own repository namespace.
type Org struct {
	ID        string    `json:"id"` // random, stable; the internal namespace prefix derives from it
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	// Quota caps the bytes the org stores: nil is the server's default,
	// 0 is no limit.
	Quota *int64 `json:"quota_bytes,omitempty"`
}

// orgNameRE is what an org name may be: it is a login user name, so keep it
// to one lowercase DNS-label-like word.
var orgNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidOrgName reports whether name may name an organization.
func ValidOrgName(name string) error {
	if !orgNameRE.MatchString(name) {
		return fmt.Errorf("org name %q: want 1-63 of [a-z0-9-], starting and ending alphanumeric: %w", name, errdefs.ErrInvalidArgument)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b)
}

// CreateOrg creates an organization.
func (s *Store) CreateOrg(ctx context.Context, name string) (Org, error) {
	if err := ValidOrgName(name); err != nil {
		return Org{}, err
	}
	o := Org{ID: randomHex(8), Name: name, CreatedAt: s.now().UTC().Truncate(time.Second)}
	_, err := s.exec(ctx, `INSERT INTO orgs(id, name, created_at) VALUES (?, ?, ?)`, o.ID, o.Name, unix(o.CreatedAt))
	if err != nil {
		if isUniqueViolation(err) {
			return Org{}, fmt.Errorf("create org %s: %w", name, errdefs.ErrAlreadyExists)
		}
		return Org{}, fmt.Errorf("create org %s: %w", name, err)
	}
	return o, nil
}

// Org returns the organization called name.
func (s *Store) Org(ctx context.Context, name string) (Org, error) {
	var o Org
	var created int64
	var quota sql.NullInt64
	err := s.queryRow(ctx, `SELECT id, name, created_at, quota_bytes FROM orgs WHERE name = ?`, name).Scan(&o.ID, &o.Name, &created, &quota)
	if err != nil {
		return Org{}, notFound(err, "org "+name)
	}
	o.CreatedAt = time.Unix(created, 0).UTC()
	o.Quota = nullableInt(quota)
	return o, nil
}

// Orgs lists every organization by name.
func (s *Store) Orgs(ctx context.Context) ([]Org, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, created_at, quota_bytes FROM orgs ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list orgs: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []Org
	for rows.Next() {
		var o Org
		var created int64
		var quota sql.NullInt64
		if err := rows.Scan(&o.ID, &o.Name, &created, &quota); err != nil {
			return nil, fmt.Errorf("list orgs: %w", err)
		}
		o.CreatedAt = time.Unix(created, 0).UTC()
		o.Quota = nullableInt(quota)
		out = append(out, o)
	}
	return out, rows.Err()
}

// DeleteOrg deletes an organization with its tokens and catalog entries.
// Its blobs stay on storage until gc (they are unreachable at once: the
// org's namespace prefix is random and never reused).
func (s *Store) DeleteOrg(ctx context.Context, name string) error {
	o, err := s.Org(ctx, name)
	if err != nil {
		return fmt.Errorf("delete org: %w", err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete org %s: %w", name, err)
	}
	defer func() { _ = tx.Rollback() }()
	for _, q := range []string{
		`DELETE FROM tokens WHERE org_id = ?`,
		`DELETE FROM repos WHERE org_id = ?`,
		`DELETE FROM repo_blobs WHERE org_id = ?`,
		`DELETE FROM org_aliases WHERE org_id = ?`,
		`DELETE FROM org_blob_activity WHERE org_id = ?`,
		`DELETE FROM uploads WHERE org_id = ?`,
		`DELETE FROM orgs WHERE id = ?`,
	} {
		if _, err := tx.ExecContext(ctx, s.q(q), o.ID); err != nil {
			return fmt.Errorf("delete org %s: %w", name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("delete org %s: %w", name, err)
	}
	return nil
}

// SetOrgQuota sets the bytes org may store: nil for the server's default,
// 0 for no limit.
func (s *Store) SetOrgQuota(ctx context.Context, name string, quota *int64) error {
	if quota != nil && *quota < 0 {
		return fmt.Errorf("quota of %s: %d bytes is negative: %w", name, *quota, errdefs.ErrInvalidArgument)
	}
	var v any
	if quota != nil {
		v = *quota
	}
	res, err := s.exec(ctx, `UPDATE orgs SET quota_bytes = ? WHERE name = ?`, v, name)
	if err != nil {
		return fmt.Errorf("quota of %s: %w", name, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("quota of %s: org %s: %w", name, name, errdefs.ErrNotFound)
	}
	return nil
}

func nullableInt(v sql.NullInt64) *int64 {
	if !v.Valid {
		return nil
	}
	return &v.Int64
}

func isUniqueViolation(err error) bool {
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "unique") || strings.Contains(msg, "duplicate key")
}
