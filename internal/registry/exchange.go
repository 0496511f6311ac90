package registry

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// errReply is an error answer that replaces distribution's.
type errReply struct {
	status int
	err    errcode.Error
}

// exchange is one request's bookkeeping beyond name rewriting: admission
// against its org's quota and upload-session cap before distribution sees
// it, and, from distribution's answer, the records that answer implies
// (upload sessions, what the org's repository now holds, gc activity,
// verified digest aliases). Every record is the caller's org's own.
type exchange struct {
	ctx    context.Context
	s      *Server
	c      *caller
	rt     route
	method string
	q      url.Values
	body   *guardBody // nil without a body
	quota  *quotaBody // set once the body is counted against the quota
	offset int64      // the upload session's size when the request began
	rw     *rewriter
}

func (x *exchange) org() string { return x.c.token.OrgID }

func writeReply(w http.ResponseWriter, e *errReply) { serveErrorStatus(w, e.status, e.err) }

// admitUpload decides whether a POST to /blobs/uploads/ may proceed: the
// org must have room, and (unless the POST completes in one request) fewer
// open sessions than the cap.
func (x *exchange) admitUpload(w http.ResponseWriter, r *http.Request, monolithic bool) bool {
	ctx := r.Context()
	ok, u, err := x.s.quotas.room(ctx, x.c, 1)
	if err != nil {
		x.s.log.Error("registry quota", "err", err)
		serveError(w, errcode.ErrorCodeUnknown, nil)
		return false
	}
	if !ok {
		writeReply(w, quotaDenied(x.c, u))
		return false
	}
	if limit := x.s.cfg.Limits.UploadSessions; !monolithic && limit >= 0 {
		n, err := x.s.store.OpenUploads(ctx, x.org(), time.Now().Add(-x.s.cfg.Limits.UploadIdle))
		if err != nil {
			x.s.log.Error("registry upload sessions", "err", err)
			serveError(w, errcode.ErrorCodeUnknown, nil)
			return false
		}
		if n >= limit {
			w.Header().Set("Retry-After", strconv.Itoa(int(x.s.cfg.Limits.UploadIdle.Seconds())))
			writeReply(w, &errReply{http.StatusTooManyRequests, errcode.ErrorCodeTooManyRequests.WithMessage(fmt.Sprintf(
				"org %s has %d open upload sessions (limit %d): finish or cancel one (DELETE its Location); idle ones expire after %s",
				x.c.org, n, limit, x.s.cfg.Limits.UploadIdle))})
			return false
		}
	}
	return !monolithic || x.admitBody(w, r)
}

// admitBody counts a request body against the org's quota as it arrives;
// an org with no room left gets no byte in.
func (x *exchange) admitBody(w http.ResponseWriter, r *http.Request) bool {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return true
	}
	ctx := r.Context()
	ok, u, err := x.s.quotas.room(ctx, x.c, 1)
	if err == nil && ok {
		x.quota, err = x.s.quotas.limitBody(ctx, x.c, r.Body)
	}
	if err != nil {
		x.s.log.Error("registry quota", "err", err)
		serveError(w, errcode.ErrorCodeUnknown, nil)
		return false
	}
	if !ok {
		writeReply(w, quotaDenied(x.c, u))
		return false
	}
	r.Body = x.quota
	return true
}

// release ends the request's claim on its org's quota. A session whose
// body the middleware cut (quota, pace) cannot be resumed (distribution
// checks the offset its state names), so it is cancelled here, freeing
// what it held.
func (x *exchange) release() {
	if x.rt.name == routeUploadPart && x.cut() {
		id := strings.TrimPrefix(x.rt.rest, "/blobs/uploads/")
		ctx := context.WithoutCancel(x.ctx)
		if err := x.s.cancelUpload(ctx, x.rw.internal, id); err != nil {
			x.s.log.Warn("registry cancel cut upload", "org", x.c.org, "err", err)
		}
		x.logErr("upload session", x.s.store.CloseUpload(ctx, x.org(), id))
	}
	if x.quota != nil {
		x.quota.release()
	}
}

// cut reports whether the middleware cut the request's body.
func (x *exchange) cut() bool {
	return (x.quota != nil && x.quota.tripped) || (x.body != nil && x.body.tripped)
}

// cancelUpload cancels an upload session through the storage API (the
// HTTP route would want a state with the session's current offset).
func (s *Server) cancelUpload(ctx context.Context, internal, id string) error {
	named, err := reference.WithName(internal)
	if err != nil {
		return err
	}
	repo, err := s.reg.Repository(ctx, named)
	if err != nil {
		return err
	}
	bw, err := repo.Blobs(ctx).Resume(ctx, id)
	if err != nil {
		return err
	}
	return bw.Cancel(ctx)
}

// answer runs when distribution's status and headers are known, before
// anything is sent. It records what the answer means and may replace it:
// a failure the middleware caused (a body cut for quota or pace) gets the
// middleware's error, and a blob whose alias does not verify is refused.
func (x *exchange) answer(status int, h http.Header) *errReply {
	ctx := context.WithoutCancel(x.ctx)
	uploadID := strings.TrimPrefix(x.rt.rest, "/blobs/uploads/")
	received := int64(0)
	if x.quota != nil {
		received = x.quota.n
	}
	progress := func() {
		if x.rt.name == routeUploadPart && received > 0 {
			x.logErr("upload progress", x.s.store.UploadProgress(ctx, x.org(), uploadID, x.offset+received))
		}
	}
	switch {
	case x.quota != nil && x.quota.tripped:
		progress()
		return quotaDenied(x.c, x.quota.base)
	case x.body != nil && x.body.tripped:
		progress()
		return &errReply{http.StatusRequestTimeout, errcode.ErrorCodeBlobUploadInvalid.WithMessage(fmt.Sprintf(
			"request body arrived slower than %s/s (after %s) or stalled for %s; resume the upload", x.s.cfg.Limits.BodyMinRate, x.s.cfg.Limits.BodyGrace, x.s.cfg.Limits.BodyStall))}
	}
	canon := h.Get("Docker-Content-Digest")
	if canon == "" && status == http.StatusTemporaryRedirect && x.rt.name == routeBlob {
		// A redirect to the storage (blob_redirect) names no digest: it is
		// the one distribution was asked for.
		canon = strings.TrimPrefix(x.rt.rest, "/blobs/")
		if x.rw.sent != "" {
			canon = x.rw.sent
		}
	}
	switch {
	case x.rt.name == routeUpload && x.method == http.MethodPost:
		switch status {
		case http.StatusCreated: // a mount, or a single-request upload
			return x.created(ctx, canon)
		case http.StatusAccepted:
			if id := h.Get("Docker-Upload-UUID"); id != "" {
				x.logErr("upload session", x.s.store.OpenUpload(ctx, id, x.org(), x.rt.repo))
			}
		}
	case x.rt.name == routeUploadPart:
		switch {
		case x.method == http.MethodPatch && status == http.StatusAccepted:
			if end, ok := rangeEnd(h.Get("Range")); ok {
				x.logErr("upload progress", x.s.store.UploadProgress(ctx, x.org(), uploadID, end))
			}
		case x.method == http.MethodPut && status == http.StatusCreated:
			x.logErr("upload session", x.s.store.CloseUpload(ctx, x.org(), uploadID))
			return x.created(ctx, canon)
		case x.method == http.MethodDelete && status == http.StatusNoContent, status == http.StatusNotFound:
			x.logErr("upload session", x.s.store.CloseUpload(ctx, x.org(), uploadID))
		case status >= 400:
			progress()
		}
	case x.rt.name == routeBlob && (status == http.StatusOK || status == http.StatusTemporaryRedirect) && (x.method == http.MethodGet || x.method == http.MethodHead):
		// The org holds this blob (it answered 200, or with blob_redirect
		// 307 to the storage, in the org's own repository): a client that
		// finds one skips uploading it and will reference it soon, so keep
		// gc's hands off the org's link.
		x.s.touches.touch(x.org(), canon)
	}
	return nil
}

// created records a blob that now is in the caller's repository: its
// alias, once verified against the bytes; its size, against the quota;
// the activity that keeps gc off it while its manifest is on the way.
func (x *exchange) created(ctx context.Context, canon string) *errReply {
	if _, err := digest.Parse(canon); err != nil {
		return nil
	}
	if alias := x.rw.digestOut; alias != "" && alias != canon {
		if err := x.s.verifyAlias(ctx, x.c, x.rw.internal, alias, canon); err != nil {
			x.s.log.Warn("registry digest alias refused", "org", x.c.org, "alias", alias, "canonical", canon, "err", err)
			return &errReply{http.StatusBadRequest, errcode.ErrorCodeDigestInvalid.WithDetail(alias)}
		}
	}
	size := int64(0)
	if d, err := x.s.reg.BlobStatter().Stat(ctx, digest.Digest(canon)); err == nil {
		size = d.Size
	}
	x.logErr("blob record", x.s.store.RecordRepoBlob(ctx, x.org(), x.rt.repo, canon, size))
	x.s.quotas.forget(x.org())
	x.s.touches.touch(x.org(), canon)
	return nil
}

func (x *exchange) logErr(what string, err error) {
	if err != nil {
		x.s.log.Error("registry "+what, "org", x.c.org, "err", err)
	}
}

// verifyAlias records that alias names the blob canonical in the caller's
// org, after hashing the stored bytes with alias's algorithm (an alias
// the org already holds for the same blob needs no second look).
func (s *Server) verifyAlias(ctx context.Context, c *caller, internal, alias, canonical string) error {
	if have, err := s.store.DigestAlias(ctx, c.token.OrgID, alias); err == nil && have == canonical {
		return nil
	}
	a, err := digest.Parse(alias)
	if err != nil || !a.Algorithm().Available() {
		return fmt.Errorf("digest %s: unsupported", alias)
	}
	named, err := reference.WithName(internal)
	if err != nil {
		return err
	}
	repo, err := s.reg.Repository(ctx, named)
	if err != nil {
		return err
	}
	rd, err := repo.Blobs(ctx).Open(ctx, digest.Digest(canonical))
	if err != nil {
		return err
	}
	defer func() { _ = rd.Close() }()
	v := a.Verifier()
	if _, err := io.Copy(v, rd); err != nil {
		return err
	}
	if !v.Verified() {
		return fmt.Errorf("the bytes of %s do not hash to %s", canonical, alias)
	}
	return s.store.AddDigestAlias(ctx, c.token.OrgID, alias, canonical)
}

// rangeEnd returns an upload's size from distribution's "Range: 0-N".
func rangeEnd(r string) (int64, bool) {
	_, end, ok := strings.Cut(r, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(end, 10, 64)
	return n + 1, err == nil
}
