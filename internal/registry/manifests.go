package registry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"
)

// prepareManifest handles what distribution lacks for manifests before the
// request reaches it: the size limit (413), digests of algorithms other than
// sha256 (verified here, stored under their sha256, remembered as an alias),
// and OCI-Subject plus the catalog entry on a successful PUT. It returns the
// path rest to send on, or false when it already answered.
func (s *Server) prepareManifest(w http.ResponseWriter, r *http.Request, rt route, c *caller, rw *rewriter) (string, bool) {
	ref := strings.TrimPrefix(rt.rest, "/manifests/")
	var alias digest.Digest
	if d, err := digest.Parse(ref); err == nil && d.Algorithm() != digest.Canonical {
		alias = d
	}
	ctx := r.Context()
	if r.Method != http.MethodPut {
		if alias == "" {
			return rt.rest, true
		}
		canonical, err := s.store.DigestAlias(ctx, c.token.OrgID, alias.String())
		if err != nil {
			serveError(w, errcode.ErrorCodeManifestUnknown, map[string]string{"digest": alias.String()})
			return "", false
		}
		rw.digestOut = alias.String()
		rw.asked, rw.sent = alias.String(), canonical
		return "/manifests/" + canonical, true
	}

	body, err := io.ReadAll(io.LimitReader(r.Body, maxManifestSize+1))
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, errTooSlow) {
			status = http.StatusRequestTimeout
		}
		serveErrorStatus(w, status, errcode.ErrorCodeManifestInvalid.WithMessage("reading manifest: "+err.Error()))
		return "", false
	}
	if len(body) > maxManifestSize {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		_ = errcode.ServeJSON(discardStatus{w}, errcode.ErrorCodeManifestInvalid.WithMessage("manifest exceeds 4 MiB"))
		return "", false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	rest := rt.rest
	canonical := digest.FromBytes(body)
	if alias != "" {
		if alias.Algorithm().FromBytes(body) != alias {
			serveError(w, errcode.ErrorCodeDigestInvalid, map[string]string{"digest": alias.String()})
			return "", false
		}
		rest = "/manifests/" + canonical.String()
		rw.digestOut = alias.String()
	}
	if ok, u, err := s.quotas.room(ctx, c, int64(len(body))); err != nil {
		s.log.Error("registry quota", "err", err)
		serveError(w, errcode.ErrorCodeUnknown, nil)
		return "", false
	} else if !ok {
		if _, err := s.store.OrgBlobRepo(ctx, c.token.OrgID, canonical.String()); err != nil {
			writeReply(w, quotaDenied(c, u))
			return "", false
		}
	}
	missing, err := s.missingIndexChild(ctx, c, rw.internal, r.Header.Get("Content-Type"), body)
	if err != nil {
		s.log.Error("registry index check", "err", err)
		serveError(w, errcode.ErrorCodeUnknown, nil)
		return "", false
	}
	if missing != "" {
		serveError(w, errcode.ErrorCodeManifestBlobUnknown, map[string]string{"digest": missing})
		return "", false
	}
	subject := manifestSubject(body)
	rw.onSuccess = func(h http.Header) {
		if subject != "" {
			h.Set("OCI-Subject", subject)
		}
		ctx := context.WithoutCancel(ctx)
		if alias != "" { // verified against the body above
			if err := s.store.AddDigestAlias(ctx, c.token.OrgID, alias.String(), canonical.String()); err != nil {
				s.log.Error("registry digest alias", "err", err)
			}
		}
		if err := s.store.AddRepo(ctx, c.token.OrgID, rt.repo); err != nil {
			s.log.Error("registry catalog", "repo", rt.repo, "err", err)
		}
		if err := s.store.RecordRepoBlob(ctx, c.token.OrgID, rt.repo, canonical.String(), int64(len(body))); err != nil {
			s.log.Error("registry manifest record", "repo", rt.repo, "err", err)
		}
		s.quotas.forget(c.token.OrgID)
	}
	return rest, true
}
