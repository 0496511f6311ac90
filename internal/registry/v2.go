package registry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/ferryvm/ferry/internal/registry/auth"
)

// maxManifestSize is the largest manifest accepted (distribution's own
// limit; larger bodies get 413 before distribution sees them).
const maxManifestSize = 4 << 20

// actionFor maps a method to the token-spec action it needs.
func actionFor(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead:
		return "pull"
	case http.MethodDelete:
		return "delete"
	}
	return "push"
}

// scopeFor is the scope a challenge asks for (push implies pull, as
// distribution's clients expect).
func scopeFor(repo, action string) string {
	if action == "push" {
		return "repository:" + repo + ":pull,push"
	}
	return "repository:" + repo + ":" + action
}

// serveV2 is the authorizer middleware around distribution's app.
func (s *Server) serveV2(w http.ResponseWriter, r *http.Request, body *guardBody) {
	rt := parseRoute(r.URL.Path)
	s.metrics.observe(w, r, rt.name, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.serveRoute(w, r, rt, body)
	}))
}

func (s *Server) challenge(w http.ResponseWriter, r *http.Request, scopes []string, errCode string) {
	w.Header().Set("WWW-Authenticate", auth.Challenge(s.realm(r), s.cfg.Service, scopes, errCode))
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	serveError(w, errcode.ErrorCodeUnauthorized, nil)
}

func (s *Server) serveRoute(w http.ResponseWriter, r *http.Request, rt route, body *guardBody) {
	action := actionFor(r.Method)
	var scopes []string
	switch {
	case rt.name == routeCatalog:
		scopes = []string{"registry:catalog:*"}
	case rt.repo != "" && auth.ValidRepoName(rt.repo):
		scopes = []string{scopeFor(rt.repo, action)}
	}
	c, err := s.authenticate(r)
	if err != nil {
		s.metrics.authFailures.Inc()
		s.challenge(w, r, scopes, "")
		return
	}
	q, err := requestParams(r, rt.name)
	if err != nil {
		var pe *paramError
		_ = errors.As(err, &pe)
		serveErrorStatus(w, pe.status, errcode.ErrorCodeUnsupported.WithMessage(pe.msg))
		return
	}
	switch rt.name {
	case routeBase:
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "{}")
		return
	case routeCatalog:
		if !c.allows("registry", "catalog", "*") {
			s.challenge(w, r, scopes, "insufficient_scope")
			return
		}
		s.serveCatalog(w, r, c, q)
		return
	case routeUnknown:
		serveError(w, errcode.ErrorCodeUnsupported, nil)
		return
	}
	internal, ok := c.ns.Internal(rt.repo)
	if !ok {
		serveError(w, errcode.ErrorCodeNameInvalid, map[string]string{"name": rt.repo})
		return
	}
	if !c.allows("repository", rt.repo, action) {
		s.challenge(w, r, scopes, "insufficient_scope")
		return
	}
	if rt.name == routeReferrers {
		s.serveReferrers(w, r, internal, strings.TrimPrefix(rt.rest, "/referrers/"), q)
		return
	}
	// Rewrite the request for distribution: path, upload state, mount.
	r = r.Clone(r.Context())
	x := &exchange{ctx: r.Context(), s: s, c: c, rt: rt, method: r.Method, q: q, body: body}
	if st := q.Get("_state"); st != "" {
		var offset int64
		st, offset = s.stateIn(st, c.ns)
		q.Set("_state", st)
		x.offset = offset
	}
	rw := &rewriter{ResponseWriter: w, s: s, ns: c.ns, external: rt.repo, internal: internal, route: rt.name, method: r.Method, x: x}
	x.rw = rw
	ctx := r.Context()
	switch {
	case rt.name == routeUpload && r.Method == http.MethodPost:
		if !s.mountIn(ctx, q, c) {
			// The JWT lacks pull on "from" though the org token has it: ask
			// the client to fetch a token with that scope too, as
			// distribution's token auth does. This depends only on the
			// token, never on what exists.
			s.challenge(w, r, append(scopes, scopeFor(q.Get("from"), "pull")), "insufficient_scope")
			return
		}
		rw.digestOut = nonCanonical(q.Get("mount"), q.Get("digest"))
		if m := q.Get("mount"); m != "" && rw.digestOut == m {
			// distribution links only the sha256 of a mounted blob.
			q.Set("mount", s.canonicalBlob(ctx, c, m))
		}
		monolithic := q.Get("digest") != "" && q.Get("mount") == "" && r.ContentLength != 0
		if !x.admitUpload(w, r, monolithic) {
			return
		}
		if monolithic {
			r.URL.Path = "/v2/" + internal + rt.rest
			s.monolithicPost(rw, r, q)
			rw.finish()
			x.release()
			return
		}
	case rt.name == routeUploadPart:
		if r.Method == http.MethodPut {
			rw.digestOut = nonCanonical(q.Get("digest"))
		}
		if !x.admitBody(w, r) {
			return
		}
	case rt.name == routeBlob:
		ref := strings.TrimPrefix(rt.rest, "/blobs/")
		if rw.digestOut = nonCanonical(ref); rw.digestOut != "" {
			rw.asked, rw.sent = ref, s.canonicalBlob(ctx, c, ref)
			rt.rest = "/blobs/" + rw.sent
		}
	case rt.name == routeManifest:
		var ok bool
		if rt.rest, ok = s.prepareManifest(w, r, rt, c, rw); !ok {
			return
		}
	}
	r.URL.Path = "/v2/" + internal + rt.rest
	r.URL.RawPath = ""
	s.dispatch(rw, r, q)
	rw.finish()
	x.release()
}

// canonicalBlob returns the sha256 digest the caller's org recorded for a
// blob uploaded under another algorithm, or d itself when it has none.
func (s *Server) canonicalBlob(ctx context.Context, c *caller, d string) string {
	if canon, err := s.store.DigestAlias(ctx, c.token.OrgID, d); err == nil {
		return canon
	}
	return d
}

// nonCanonical returns the first non-empty of digests when it is a valid
// digest of an algorithm other than distribution's canonical sha256: the
// client then gets that digest back in Docker-Content-Digest rather than the
// sha256 distribution files the content under.
func nonCanonical(digests ...string) string {
	for _, d := range digests {
		if d == "" {
			continue
		}
		if strings.HasPrefix(d, "sha256:") {
			return ""
		}
		if p, err := digest.Parse(d); err == nil && p.Algorithm() != digest.Canonical {
			return d
		}
		return ""
	}
	return ""
}

// stateIn opens an upload state from a client, maps its repository name
// into the caller's namespace and seals it again. A state that does not
// verify is passed on untouched for distribution to refuse.
func (s *Server) stateIn(token string, ns Namespace) (string, int64) {
	st, err := s.key.unpack(token)
	if err != nil {
		return token, 0
	}
	internal, ok := ns.Internal(st.Name)
	if !ok {
		return token, 0
	}
	st.Name = internal
	return s.key.pack(st), st.Offset
}

// stateOut is stateIn's inverse for states distribution hands out.
func (s *Server) stateOut(token string, ns Namespace) string {
	st, err := s.key.unpack(token)
	if err != nil {
		return token
	}
	ext, ok := ns.External(st.Name)
	if !ok {
		return token
	}
	st.Name = ext
	return s.key.pack(st)
}

// mountIn rewrites a cross-repository mount. It is honoured only when the
// source is a valid name in the caller's org that the caller may pull;
// otherwise the mount is dropped and the client gets an ordinary upload
// session (202), which says nothing about whether the blob exists anywhere.
// A mount without "from" (OCI 1.1's anonymous mount) looks for the blob
// only in the caller's org: in the repository that last received it there,
// which the caller's org token may pull.
// It returns false when the caller's JWT merely lacks the pull scope on
// "from" that its org token would grant (the caller should re-challenge).
func (s *Server) mountIn(ctx context.Context, q url.Values, c *caller) bool {
	mount, from := q.Get("mount"), q.Get("from")
	drop := func() bool {
		q.Del("mount")
		q.Del("from")
		return true
	}
	if mount == "" {
		q.Del("from")
		return true
	}
	if _, err := digest.Parse(mount); err != nil {
		return drop()
	}
	if from == "" {
		repo, err := s.store.OrgBlobRepo(ctx, c.token.OrgID, s.canonicalBlob(ctx, c, mount))
		if internal, ok := c.ns.Internal(repo); err == nil && ok && slices.Contains(c.token.Scope.Actions(), "pull") {
			q.Set("from", internal)
		}
		return true
	}
	internal, ok := c.ns.Internal(from)
	if !ok {
		return drop()
	}
	if !c.allows("repository", from, "pull") {
		if c.claims != nil && slices.Contains(c.token.Scope.Actions(), "pull") {
			return false
		}
		return drop()
	}
	q.Set("from", internal)
	return true
}

// discardStatus lets errcode.ServeJSON write a body after the status was
// already sent.
type discardStatus struct{ http.ResponseWriter }

func (discardStatus) WriteHeader(int) {}
