package registry

import (
	"sync"
	"time"

	"github.com/ferryvm/ferry/internal/registry/auth"
	"github.com/ferryvm/ferry/internal/registry/store"
)

// tokenCacheTTL bounds how long a token looked up for one request is
// trusted for the next ones without asking the database again: a
// revocation or org deletion reaches a busy client within this time.
const tokenCacheTTL = time.Second

// maxCachedTokens caps the cache; past it the cache starts over.
const maxCachedTokens = 10000

// tokenCache remembers successful token lookups briefly, so a push's
// hundreds of requests cost one database query per second, not one each.
type tokenCache struct {
	mu  sync.Mutex
	ttl time.Duration
	m   map[string]cachedToken
}

type cachedToken struct {
	tok store.Token
	at  time.Time
}

func newTokenCache(ttl time.Duration) *tokenCache {
	return &tokenCache{ttl: ttl, m: map[string]cachedToken{}}
}

func (c *tokenCache) get(key string, now time.Time) (store.Token, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || now.Sub(e.at) > c.ttl || !e.tok.Active(now) {
		return store.Token{}, false
	}
	return e.tok, true
}

func (c *tokenCache) put(key string, t store.Token, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedTokens {
		c.m = map[string]cachedToken{}
	}
	c.m[key] = cachedToken{tok: t, at: now}
}

// claimsCache remembers verified JWTs until they expire, so a client's
// requests under one token pay for signature and JSON checks once.
type claimsCache struct {
	mu sync.Mutex
	m  map[string]*auth.Claims
}

func newClaimsCache() *claimsCache { return &claimsCache{m: map[string]*auth.Claims{}} }

func (c *claimsCache) get(token string, now time.Time) (*auth.Claims, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl, ok := c.m[token]
	if !ok {
		return nil, false
	}
	if cl.ExpiresAt == nil || !now.Before(cl.ExpiresAt.Time) {
		delete(c.m, token)
		return nil, false
	}
	return cl, true
}

func (c *claimsCache) put(token string, cl *auth.Claims) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedTokens {
		c.m = map[string]*auth.Claims{}
	}
	c.m[token] = cl
}
