package registry

import (
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/registry/auth"
	"github.com/ferryvm/ferry/internal/registry/store"
)

// caller is an authenticated request's principal: an org, and either the
// claims of a JWT from the token endpoint or a ferry token presented
// directly (which then grants everything its scope allows in the org).
type caller struct {
	org    string
	ns     Namespace
	claims *auth.Claims // nil when a ferry token was presented directly
	token  store.Token
}

// allows reports whether the caller may do action on type:name.
func (c *caller) allows(typ, name, action string) bool {
	if c.claims != nil {
		return c.claims.Allows(typ, name, action)
	}
	switch typ {
	case "registry":
		return name == "catalog"
	case "repository":
		return auth.ValidRepoName(name) && slices.Contains(c.token.Scope.Actions(), action)
	}
	return false
}

// authenticate resolves the request's credentials: "Bearer <jwt>",
// "Bearer <ferry token>" or "Basic org:<ferry token>". A JWT is only as good
// as the ferry token behind it: a revoked or expired token, or a deleted
// org, stops its JWTs at once.
func (s *Server) authenticate(r *http.Request) (*caller, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, fmt.Errorf("no credentials: %w", errdefs.ErrUnauthorized)
	}
	if user, pass, ok := r.BasicAuth(); ok {
		t, err := s.tokenFromSecret(r, pass)
		if err != nil {
			return nil, err
		}
		if user != t.Org {
			return nil, fmt.Errorf("token of another org: %w", errdefs.ErrUnauthorized)
		}
		return &caller{org: t.Org, ns: NamespaceFor(t.OrgID), token: t}, nil
	}
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return nil, fmt.Errorf("unsupported authorization scheme: %w", errdefs.ErrUnauthorized)
	}
	cred = strings.TrimSpace(cred)
	if store.LooksLikeToken(cred) {
		t, err := s.tokenFromSecret(r, cred)
		if err != nil {
			return nil, err
		}
		return &caller{org: t.Org, ns: NamespaceFor(t.OrgID), token: t}, nil
	}
	now := s.iss.Now()
	claims, ok := s.claims.get(cred, now)
	if !ok {
		var err error
		if claims, err = s.iss.Verify(cred); err != nil {
			return nil, err
		}
		s.claims.put(cred, claims)
	}
	t, ok := s.tokens.get("id:"+claims.TokenID, now)
	if !ok {
		var err error
		if t, err = s.store.TokenByID(r.Context(), claims.TokenID); err != nil || !t.Active(now) {
			return nil, fmt.Errorf("token behind the bearer is gone: %w", errdefs.ErrUnauthorized)
		}
		s.tokens.put("id:"+claims.TokenID, t, now)
	}
	if t.OrgID != claims.OrgID {
		return nil, fmt.Errorf("token behind the bearer is gone: %w", errdefs.ErrUnauthorized)
	}
	return &caller{org: t.Org, ns: NamespaceFor(t.OrgID), claims: claims, token: t}, nil
}

// tokenFromSecret authenticates a ferry token presented directly, through
// the short-lived cache (keyed by the secret's hash, not the secret).
func (s *Server) tokenFromSecret(r *http.Request, secret string) (store.Token, error) {
	sum := sha256.Sum256([]byte(secret))
	key := "secret:" + string(sum[:])
	now := s.iss.Now()
	if t, ok := s.tokens.get(key, now); ok {
		return t, nil
	}
	t, err := s.store.Authenticate(r.Context(), secret)
	if err != nil {
		return store.Token{}, err
	}
	s.tokens.put(key, t, now)
	return t, nil
}

// realm is the token endpoint URL for challenges: Config.Realm, or the
// address the client connected to. Never a request header: a challenge
// tells the client where to send its credentials, and Host or
// X-Forwarded-* would let whoever wrote them (or a cache that kept the
// answer) choose that place. Under TLS the name the client asked for (SNI)
// is used when the certificate covers it, so the realm verifies.
func (s *Server) realm(r *http.Request) string {
	if s.cfg.Realm != "" {
		return s.cfg.Realm
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := s.cfg.Addr
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		host = la.String()
	}
	if r.TLS != nil && r.TLS.ServerName != "" && s.tlsLeaf != nil && s.tlsLeaf.VerifyHostname(r.TLS.ServerName) == nil {
		if _, port, err := net.SplitHostPort(host); err == nil {
			host = net.JoinHostPort(r.TLS.ServerName, port)
		}
	}
	return scheme + "://" + host + "/token"
}
