package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/dustin/go-humanize"

	"github.com/ferryvm/ferry/internal/registry/store"
)

// errOverQuota is a request refused because the org's storage is full.
var errOverQuota = errors.New("storage quota exceeded")

// usageTTL is how long an org's usage read from the store is reused.
// Bytes this server is receiving are counted exactly on top of it.
const usageTTL = time.Second

// quotas tracks what each org stores against its quota: the store's
// record (blobs, manifests, open uploads) plus the bytes this server is
// receiving right now, so concurrent uploads of one org cannot together
// overshoot it.
type quotas struct {
	store  *store.Store
	limits Limits
	mu     sync.Mutex
	moving map[string]int64 // org id → body bytes received by requests in progress
	cached map[string]usage
}

type usage struct {
	used, quota int64 // quota < 0: no limit
	at          time.Time
}

func newQuotas(st *store.Store, l Limits) *quotas {
	return &quotas{store: st, limits: l, moving: map[string]int64{}, cached: map[string]usage{}}
}

// of returns org's usage, and its quota (negative: none).
func (q *quotas) of(ctx context.Context, orgID, orgName string) (usage, error) {
	now := time.Now()
	q.mu.Lock()
	u, ok := q.cached[orgID]
	q.mu.Unlock()
	if ok && now.Sub(u.at) < usageTTL {
		return u, nil
	}
	o, err := q.store.Org(ctx, orgName)
	if err != nil {
		return u, fmt.Errorf("quota of %s: %w", orgName, err)
	}
	u = usage{quota: int64(q.limits.OrgStorage), at: now}
	if o.Quota != nil {
		u.quota = *o.Quota
		if u.quota == 0 {
			u.quota = -1
		}
	}
	if u.used, err = q.store.Usage(ctx, orgID, now.Add(-q.limits.UploadMaxAge)); err != nil {
		return u, err
	}
	q.mu.Lock()
	if len(q.cached) > maxCachedTokens {
		q.cached = map[string]usage{}
	}
	q.cached[orgID] = u
	q.mu.Unlock()
	return u, nil
}

// forget drops org's cached usage (the store just changed).
func (q *quotas) forget(orgID string) {
	q.mu.Lock()
	delete(q.cached, orgID)
	q.mu.Unlock()
}

// room reports whether org may store extra more bytes now.
func (q *quotas) room(ctx context.Context, c *caller, extra int64) (bool, usage, error) {
	u, err := q.of(ctx, c.token.OrgID, c.org)
	if err != nil || u.quota < 0 {
		return true, u, err
	}
	q.mu.Lock()
	moving := q.moving[c.token.OrgID]
	q.mu.Unlock()
	return u.used+moving+extra <= u.quota, u, nil
}

// quotaBody counts a request body against its org's quota as it arrives
// and fails the read that would exceed it.
type quotaBody struct {
	io.ReadCloser
	q       *quotas
	org     string
	base    usage // the org's usage when the request began
	n       int64
	tripped bool
}

// limitBody puts r's body under org's quota; release must run when the
// request is done.
func (q *quotas) limitBody(ctx context.Context, c *caller, body io.ReadCloser) (*quotaBody, error) {
	u, err := q.of(ctx, c.token.OrgID, c.org)
	if err != nil {
		return nil, err
	}
	return &quotaBody{ReadCloser: body, q: q, org: c.token.OrgID, base: u}, nil
}

func (b *quotaBody) Read(p []byte) (int, error) {
	if b.tripped {
		return 0, errOverQuota
	}
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.q.mu.Lock()
		moving := b.q.moving[b.org]
		if b.base.quota >= 0 && b.base.used+moving+int64(n) > b.base.quota {
			// Pass on only what fits; the rest is refused.
			n = int(max(0, min(int64(n), b.base.quota-b.base.used-moving)))
			b.tripped, err = true, errOverQuota
		}
		b.q.moving[b.org] = moving + int64(n)
		b.q.mu.Unlock()
		b.n += int64(n)
	}
	return n, err
}

// release stops counting the body as moving; by then the store records
// where its bytes went.
func (b *quotaBody) release() {
	b.q.mu.Lock()
	if b.q.moving[b.org] -= b.n; b.q.moving[b.org] <= 0 {
		delete(b.q.moving, b.org)
	}
	b.q.mu.Unlock()
	b.q.forget(b.org)
}

// quotaDenied is the answer to an org over its quota: 403 DENIED, as
// registries answer a quota (the distribution spec's code for a refused
// operation), saying how much is used.
func quotaDenied(c *caller, u usage) *errReply {
	return &errReply{http.StatusForbidden, errcode.ErrorCodeDenied.WithMessage(fmt.Sprintf(
		"storage quota of org %s exceeded: %s of %s used; delete images and run gc, or ask for a larger quota",
		c.org, humanize.IBytes(uint64(max(u.used, 0))), humanize.IBytes(uint64(max(u.quota, 0)))))}
}

// OrgUsage reports what org stores and its effective quota (negative: no
// limit) under cfg, as the server counts them.
func OrgUsage(ctx context.Context, cfg Config, st *store.Store, org store.Org) (used, quota int64, err error) {
	if cfg, err = cfg.withDefaults(); err != nil {
		return 0, 0, err
	}
	u, err := newQuotas(st, cfg.Limits).of(ctx, org.ID, org.Name)
	return u.used, u.quota, err
}
