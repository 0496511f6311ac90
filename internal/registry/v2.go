package registry

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
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
func (s *Server) serveV2(w http.ResponseWriter, r *http.Request) {
	rt := parseRoute(r.URL.Path)
	s.metrics.observe(w, r, rt.name, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.serveRoute(w, r, rt)
	}))
}

func (s *Server) challenge(w http.ResponseWriter, r *http.Request, scopes []string, errCode string) {
	w.Header().Set("WWW-Authenticate", auth.Challenge(s.realm(r), s.cfg.Service, scopes, errCode))
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	serveError(w, errcode.ErrorCodeUnauthorized, nil)
}

func (s *Server) serveRoute(w http.ResponseWriter, r *http.Request, rt route) {
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
		s.serveCatalog(w, r, c)
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
		s.serveReferrers(w, r, internal, strings.TrimPrefix(rt.rest, "/referrers/"))
		return
	}
	// Rewrite the request for distribution: path, upload state, mount.
	r = r.Clone(r.Context())
	r.URL.Path = "/v2/" + internal + rt.rest
	r.URL.RawPath = ""
	r.RequestURI = r.URL.RequestURI()
	q := r.URL.Query()
	if st := q.Get("_state"); st != "" {
		q.Set("_state", s.stateIn(st, c.ns))
	}
	var subject string
	switch {
	case rt.name == routeUpload && r.Method == http.MethodPost:
		s.mountIn(q, c)
		if d := q.Get("digest"); d != "" {
			s.touches.touch(d)
		}
	case (rt.name == routeUploadPart && r.Method == http.MethodPut):
		if d := q.Get("digest"); d != "" {
			s.touches.touch(d)
		}
	case rt.name == routeBlob && r.Method == http.MethodHead:
		// A client that finds a blob skips uploading it and will reference
		// it soon: keep gc's hands off.
		s.touches.touch(strings.TrimPrefix(rt.rest, "/blobs/"))
	case rt.name == routeManifest && r.Method == http.MethodPut:
		body, err := io.ReadAll(io.LimitReader(r.Body, maxManifestSize+1))
		if err != nil {
			serveError(w, errcode.ErrorCodeManifestInvalid, "reading manifest: "+err.Error())
			return
		}
		if len(body) > maxManifestSize {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			_ = errcode.ServeJSON(discardStatus{w}, errcode.ErrorCodeManifestInvalid.WithMessage("manifest exceeds 4 MiB"))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		subject = manifestSubject(body)
	}
	r.URL.RawQuery = q.Encode()

	rw := &rewriter{ResponseWriter: w, s: s, ns: c.ns, external: rt.repo, internal: internal, route: rt.name, method: r.Method}
	if rt.name == routeManifest && r.Method == http.MethodPut {
		rw.onSuccess = func(h http.Header) {
			if subject != "" {
				h.Set("OCI-Subject", subject)
			}
			if err := s.store.AddRepo(r.Context(), c.token.OrgID, rt.repo); err != nil {
				s.log.Error("registry catalog", "repo", rt.repo, "err", err)
			}
		}
	}
	s.app.ServeHTTP(rw, r)
	rw.finish()
}

// stateIn opens an upload state from a client, maps its repository name
// into the caller's namespace and seals it again. A state that does not
// verify is passed on untouched for distribution to refuse.
func (s *Server) stateIn(token string, ns Namespace) string {
	st, err := s.key.unpack(token)
	if err != nil {
		return token
	}
	internal, ok := ns.Internal(st.Name)
	if !ok {
		return token
	}
	st.Name = internal
	return s.key.pack(st)
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
// A mount without "from" is limited to the target repository itself.
func (s *Server) mountIn(q url.Values, c *caller) {
	mount, from := q.Get("mount"), q.Get("from")
	if mount == "" {
		q.Del("from")
		return
	}
	if _, err := digest.Parse(mount); err != nil {
		q.Del("mount")
		q.Del("from")
		return
	}
	s.touches.touch(mount)
	if from == "" {
		return
	}
	internal, ok := c.ns.Internal(from)
	if !ok || !c.allows("repository", from, "pull") {
		q.Del("mount")
		q.Del("from")
		return
	}
	q.Set("from", internal)
}

// discardStatus lets errcode.ServeJSON write a body after the status was
// already sent.
type discardStatus struct{ http.ResponseWriter }

func (discardStatus) WriteHeader(int) {}
