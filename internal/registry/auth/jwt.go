package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/registry/store"
)

// Claims are the claims of a registry token: the registered ones plus the
// token-spec "access" list and which org and ferry token it was minted for.
type Claims struct {
	jwt.RegisteredClaims
	Access  []Access `json:"access"`
	OrgID   string   `json:"org_id"`
	TokenID string   `json:"tid"`
}

// Issuer mints and verifies registry tokens (HS256; the registry is the only
// party that verifies them, and replicas share the key via the HTTP secret).
type Issuer struct {
	key     []byte
	issuer  string
	service string
	ttl     time.Duration
	leeway  time.Duration
	now     func() time.Time
}

// IssuerOption configures NewIssuer.
type IssuerOption func(*Issuer)

// WithTTL sets how long minted tokens live (default 5m).
func WithTTL(d time.Duration) IssuerOption { return func(i *Issuer) { i.ttl = d } }

// WithLeeway sets the clock skew tolerated on exp/nbf/iat (default 30s).
func WithLeeway(d time.Duration) IssuerOption { return func(i *Issuer) { i.leeway = d } }

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) IssuerOption { return func(i *Issuer) { i.now = now } }

// NewIssuer returns an Issuer whose signing key derives from secret (the
// registry's shared HTTP secret) and whose tokens name service as audience.
func NewIssuer(secret []byte, service string, opts ...IssuerOption) *Issuer {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("ferry registry token signing key v1"))
	i := &Issuer{key: mac.Sum(nil), issuer: "ferry-registry", service: service, ttl: 5 * time.Minute, leeway: 30 * time.Second, now: time.Now}
	for _, o := range opts {
		o(i)
	}
	return i
}

// Service is the audience of the tokens (the challenge's service=).
func (i *Issuer) Service() string { return i.service }

// Now is the issuer's clock.
func (i *Issuer) Now() time.Time { return i.now() }

// TTL is the lifetime of minted tokens.
func (i *Issuer) TTL() time.Duration { return i.ttl }

// Issue mints a token for t carrying access.
func (i *Issuer) Issue(t store.Token, access []Access) (string, time.Time, error) {
	now := i.now().UTC().Truncate(time.Second)
	exp := now.Add(i.ttl)
	if !t.ExpiresAt.IsZero() && t.ExpiresAt.Before(exp) {
		exp = t.ExpiresAt // never outlive the token it stands for
	}
	jti := make([]byte, 12)
	_, _ = rand.Read(jti)
	if access == nil {
		access = []Access{}
	}
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    i.issuer,
			Subject:   t.Org,
			Audience:  jwt.ClaimStrings{i.service},
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        hex.EncodeToString(jti),
		},
		Access:  access,
		OrgID:   t.OrgID,
		TokenID: t.ID,
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(i.key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return s, now, nil
}

// Verify checks a token's signature, issuer, audience and times (with the
// leeway) and returns its claims. Errors wrap errdefs.ErrUnauthorized.
func (i *Issuer) Verify(token string) (*Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return i.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(i.issuer),
		jwt.WithAudience(i.service),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(i.leeway),
		jwt.WithTimeFunc(i.now),
	)
	if err != nil {
		return nil, fmt.Errorf("registry token: %w: %w", err, errdefs.ErrUnauthorized)
	}
	if c.OrgID == "" || c.TokenID == "" {
		return nil, fmt.Errorf("registry token: missing org: %w", errdefs.ErrUnauthorized)
	}
	return &c, nil
}

// Allows reports whether the claims grant action on type:name.
func (c *Claims) Allows(typ, name, action string) bool {
	for _, a := range c.Access {
		if a.Allows(typ, name, action) {
			return true
		}
	}
	return false
}
