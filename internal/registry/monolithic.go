package registry

import (
	"net/http"
	"net/url"
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
	dgst := q.Get("digest")
	open := r.Clone(r.Context())
	open.Body = http.NoBody
	open.ContentLength = 0
	oq := url.Values{}
	open.URL.RawQuery = oq.Encode()
	open.RequestURI = open.URL.RequestURI()
	rec := &headerRecorder{h: http.Header{}}
	s.app.ServeHTTP(rec, open)
	loc, err := url.Parse(rec.h.Get("Location"))
	if rec.status != http.StatusAccepted || err != nil || loc.Path == "" {
		// Let distribution answer the original request (an error).
		r.URL.RawQuery = q.Encode()
		r.RequestURI = r.URL.RequestURI()
		s.app.ServeHTTP(rw, r)
		return
	}
	put := r.Clone(r.Context())
	put.Method = http.MethodPut
	put.URL.Path, put.URL.RawPath = loc.Path, ""
	pq := loc.Query()
	pq.Set("digest", dgst)
	put.URL.RawQuery = pq.Encode()
	put.RequestURI = put.URL.RequestURI()
	if put.Header.Get("Content-Type") == "" {
		put.Header.Set("Content-Type", "application/octet-stream")
	}
	rw.route = routeUploadPart
	s.app.ServeHTTP(rw, put)
}
