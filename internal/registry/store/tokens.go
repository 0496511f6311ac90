package store

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Scope is what a token lets its holder do in its org's repositories.
type Scope string

// The token scopes. Push includes pull and delete.
const (
	ScopePull Scope = "pull"
	ScopePush Scope = "push"
)

// ParseScope validates a scope name.
func ParseScope(s string) (Scope, error) {
	switch Scope(s) {
	case ScopePull, ScopePush:
		return Scope(s), nil
	}
	return "", fmt.Errorf("token scope %q: want pull or push: %w", s, errdefs.ErrInvalidArgument)
}

// Actions lists the Docker token-spec actions the scope allows.
func (s Scope) Actions() []string {
	if s == ScopePush {
		return []string{"pull", "push", "delete"}
	}
	return []string{"pull"}
}

// Token is an access token's metadata (never its secret).
type Token struct {
	ID          string    `json:"id"`
	Org         string    `json:"org"`
	OrgID       string    `json:"org_id"`
	Scope       Scope     `json:"scope"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
	RevokedAt   time.Time `json:"revoked_at,omitzero"`
}

// Active reports whether the token may be used at now.
func (t Token) Active(now time.Time) bool {
	if !t.RevokedAt.IsZero() {
		return false
	}
	return t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt)
}

// tokenPrefix starts every secret so it is recognizable in logs, config
// files and secret scanners, and distinguishable from a JWT.
const tokenPrefix = "ferry_"

// NewTokenOpts are the optional settings of CreateToken.
type NewTokenOpts struct {
	Scope       Scope         // default push
	TTL         time.Duration // 0: never expires
	Description string
}

// CreateToken creates a token for org and returns it with its secret, which
// is shown once: only its SHA-256 is stored (the secret is 256 random bits,
// so a fast hash is enough; nothing to brute-force).
func (s *Store) CreateToken(ctx context.Context, org string, opts NewTokenOpts) (Token, string, error) {
	o, err := s.Org(ctx, org)
	if err != nil {
		return Token{}, "", fmt.Errorf("create token: %w", err)
	}
	if opts.Scope == "" {
		opts.Scope = ScopePush
	}
	if _, err := ParseScope(string(opts.Scope)); err != nil {
		return Token{}, "", err
	}
	if opts.TTL < 0 {
		return Token{}, "", fmt.Errorf("token expiry %s: %w", opts.TTL, errdefs.ErrInvalidArgument)
	}
	now := s.now().UTC().Truncate(time.Second)
	t := Token{ID: randomHex(6), Org: o.Name, OrgID: o.ID, Scope: opts.Scope, Description: opts.Description, CreatedAt: now}
	var expires sql.NullInt64
	if opts.TTL > 0 {
		t.ExpiresAt = now.Add(opts.TTL)
		expires = sql.NullInt64{Int64: unix(t.ExpiresAt), Valid: true}
	}
	secret := randomHex(32)
	_, err = s.exec(ctx, `INSERT INTO tokens(id, org_id, secret_hash, scope, description, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		t.ID, o.ID, hashSecret(secret), string(t.Scope), t.Description, unix(now), expires)
	if err != nil {
		return Token{}, "", fmt.Errorf("create token for %s: %w", org, err)
	}
	return t, tokenPrefix + t.ID + "_" + secret, nil
}

func hashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// LooksLikeToken reports whether s has the shape of a ferry token secret.
func LooksLikeToken(s string) bool { return strings.HasPrefix(s, tokenPrefix) }

const tokenCols = `t.id, o.name, o.id, t.scope, t.description, t.created_at, t.expires_at, t.revoked_at` //nolint:gosec // G101: SQL column names, no secret

func scanToken(row interface{ Scan(...any) error }) (Token, error) {
	var t Token
	var scope string
	var created int64
	var expires, revoked sql.NullInt64
	if err := row.Scan(&t.ID, &t.Org, &t.OrgID, &scope, &t.Description, &created, &expires, &revoked); err != nil {
		return Token{}, err
	}
	t.Scope = Scope(scope)
	t.CreatedAt = time.Unix(created, 0).UTC()
	t.ExpiresAt = fromUnix(expires)
	t.RevokedAt = fromUnix(revoked)
	return t, nil
}

// Authenticate checks a token secret and returns its token if it is valid,
// unexpired and unrevoked; otherwise an error wrapping
// errdefs.ErrUnauthorized that does not say which check failed.
func (s *Store) Authenticate(ctx context.Context, secret string) (Token, error) {
	unauthorized := fmt.Errorf("invalid token: %w", errdefs.ErrUnauthorized)
	rest, ok := strings.CutPrefix(secret, tokenPrefix)
	if !ok {
		return Token{}, unauthorized
	}
	id, raw, ok := strings.Cut(rest, "_")
	if !ok || id == "" || raw == "" {
		return Token{}, unauthorized
	}
	var hash string
	row := s.queryRow(ctx, `SELECT `+tokenCols+`, t.secret_hash FROM tokens t JOIN orgs o ON o.id = t.org_id WHERE t.id = ?`, id)
	var t Token
	var scope string
	var created int64
	var expires, revoked sql.NullInt64
	if err := row.Scan(&t.ID, &t.Org, &t.OrgID, &scope, &t.Description, &created, &expires, &revoked, &hash); err != nil {
		if err == sql.ErrNoRows {
			return Token{}, unauthorized
		}
		return Token{}, fmt.Errorf("authenticate: %w", err)
	}
	t.Scope = Scope(scope)
	t.CreatedAt = time.Unix(created, 0).UTC()
	t.ExpiresAt = fromUnix(expires)
	t.RevokedAt = fromUnix(revoked)
	if subtle.ConstantTimeCompare([]byte(hashSecret(raw)), []byte(hash)) != 1 || !t.Active(s.now()) {
		return Token{}, unauthorized
	}
	return t, nil
}

// TokenByID returns a token's metadata.
func (s *Store) TokenByID(ctx context.Context, id string) (Token, error) {
	t, err := scanToken(s.queryRow(ctx, `SELECT `+tokenCols+` FROM tokens t JOIN orgs o ON o.id = t.org_id WHERE t.id = ?`, id))
	if err != nil {
		return Token{}, notFound(err, "token "+id)
	}
	return t, nil
}

// Tokens lists the tokens of org, or of every org when org is "".
func (s *Store) Tokens(ctx context.Context, org string) ([]Token, error) {
	query := `SELECT ` + tokenCols + ` FROM tokens t JOIN orgs o ON o.id = t.org_id`
	var args []any
	if org != "" {
		if _, err := s.Org(ctx, org); err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		query += ` WHERE o.name = ?`
		args = append(args, org)
	}
	rows, err := s.db.QueryContext(ctx, s.q(query+` ORDER BY o.name, t.created_at, t.id`), args...)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeToken revokes a token at once: JWTs minted from it stop working too
// (the server checks the token behind every JWT).
func (s *Store) RevokeToken(ctx context.Context, id string) error {
	res, err := s.exec(ctx, `UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, unix(s.now()), id)
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.TokenByID(ctx, id); err != nil {
			return fmt.Errorf("revoke: %w", err)
		}
	}
	return nil
}
