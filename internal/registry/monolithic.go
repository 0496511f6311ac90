package registry

import (
	"context"
	"net/http"
	"net/url"
	"path"
)

// headerRecorder captures a response's status and headers, dropping its
// body (an internal request's answer).
type headerRecorder struct {
	h      http.Header
	status int
}

func (h *headerRecorder) Header() http.Header         { return h.h }
func (h *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (h *headerRecorder) WriteHeader(status int) {
	if h.status == 0 {
		h.status = status
	}
}

// monolithicPost serves a single-request upload (POST with the blob as its
// body and ?digest=), which the OCI spec allows and distribution does not
// implement: it opens an upload session in distribution and completes it
// with the body, so the client gets the 201 of the PUT. r carries the
// internal path; q its rewritten query.
func (s *Server) monolithicPost(rw *rewriter, r *http.Request, q url.Values) {
	open := r.Clone(r.Context())
	open.Body = http.NoBody
	open.ContentLength = 0
	rec := &headerRecorder{h: http.Header{}}
	s.dispatch(rec, open, url.Values{})
	loc, err := url.Parse(rec.h.Get("Location"))
	if rec.status != http.StatusAccepted || err != nil || loc.Path == "" {
		// Let distribution answer the original request (an error).
		s.dispatch(rw, r, q)
		return
	}
	put := r.Clone(r.Context())
	put.Method = http.MethodPut
	put.URL.Path, put.URL.RawPath = loc.Path, ""
	if put.Header.Get("Content-Type") == "" {
		put.Header.Set("Content-Type", "application/octet-stream")
	}
	state := loc.Query().Get("_state")
	rw.route = routeUploadPart
	s.dispatch(rw, put, url.Values{"_state": {state}, "digest": {q.Get("digest")}})
	if rw.status != http.StatusCreated {
		// distribution keeps a session whose body failed to arrive; this
		// one has no client to resume it.
		id := path.Base(loc.Path)
		if err := s.cancelUpload(context.WithoutCancel(r.Context()), rw.internal, id); err != nil {
			s.log.Debug("registry cancel single-request upload", "err", err)
		}
	}
}
