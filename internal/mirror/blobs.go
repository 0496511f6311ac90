package mirror

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/image/content"
)

func (s *Server) blob(w http.ResponseWriter, r *http.Request, repo, dgst string) {
	if !validRepo(repo) {
		writeErr(w, http.StatusBadRequest, "NAME_INVALID", "invalid repository name "+strconv.Quote(repo))
		return
	}
	d, err := v1.NewHash(dgst)
	if err != nil {
		writeErr(w, http.StatusBadRequest, "DIGEST_INVALID", "invalid digest "+strconv.Quote(dgst))
		return
	}
	switch r.Method {
	case http.MethodHead, http.MethodGet:
	case http.MethodDelete:
		writeErr(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "the mirror does not delete blobs: ferry image rm and gc do")
		return
	default:
		writeErr(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "method not allowed")
		return
	}
	cs := s.img.Content()
	f, err := cs.Open(d)
	if err != nil {
		writeErr(w, http.StatusNotFound, "BLOB_UNKNOWN", "blob unknown to the mirror: "+d.String())
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Etag", `"`+d.String()+`"`)
	// ServeContent streams from the file and answers Range requests.
	http.ServeContent(w, r, "", st.ModTime(), f)
}

func (s *Server) upload(w http.ResponseWriter, r *http.Request, repo, id string) {
	if !validRepo(repo) {
		writeErr(w, http.StatusBadRequest, "NAME_INVALID", "invalid repository name "+strconv.Quote(repo))
		return
	}
	if id == "" {
		if r.Method != http.MethodPost {
			writeErr(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "method not allowed")
			return
		}
		s.startUpload(w, r, repo)
		return
	}
	ss, err := s.lookupSession(id, repo)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	if ss == nil {
		writeErr(w, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", "upload session unknown (closed, expired, or of another repository): start the upload again")
		return
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	loc := "/v2/" + repo + "/blobs/uploads/" + id
	switch r.Method {
	case http.MethodGet:
		uploadStatus(w, loc, id, ss.n, http.StatusNoContent)
	case http.MethodPatch:
		if !s.appendChunk(w, r, ss) {
			return
		}
		uploadStatus(w, loc, id, ss.n, http.StatusAccepted)
	case http.MethodPut:
		if r.ContentLength != 0 && !s.appendChunk(w, r, ss) {
			return
		}
		s.finishUpload(w, r, repo, id, ss)
	case http.MethodDelete:
		s.dropSession(id, ss)
		w.WriteHeader(http.StatusNoContent)
	default:
		writeErr(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "method not allowed")
	}
}

// startUpload answers POST: a cross-repository mount of a blob the store
// has, a monolithic upload (?digest=) streamed into the content store, or
// a new chunked session.
func (s *Server) startUpload(w http.ResponseWriter, r *http.Request, repo string) {
	q := r.URL.Query()
	cs := s.img.Content()
	if m := q.Get("mount"); m != "" {
		if d, err := v1.NewHash(m); err == nil && cs.Has(d) && s.commitBlob(r.Context(), d, 0, nil) == nil {
			blobCreated(w, repo, d)
			return
		}
	}
	if dg := q.Get("digest"); dg != "" {
		d, err := v1.NewHash(dg)
		if err != nil {
			writeErr(w, http.StatusBadRequest, "DIGEST_INVALID", "invalid digest "+strconv.Quote(dg))
			return
		}
		if err := s.commitBlob(r.Context(), d, r.ContentLength, r.Body); err != nil {
			blobErr(w, d, err)
			return
		}
		blobCreated(w, repo, d)
		return
	}
	id, _, err := s.newSession(repo)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	uploadStatus(w, "/v2/"+repo+"/blobs/uploads/"+id, id, 0, http.StatusAccepted)
}

// appendChunk appends the body to the session, refusing a Content-Range
// that does not start where the session ends.
func (s *Server) appendChunk(w http.ResponseWriter, r *http.Request, ss *session) bool {
	if cr := r.Header.Get("Content-Range"); cr != "" {
		start, _, ok := parseRange(cr)
		if !ok || start != ss.n {
			w.Header().Set("Range", rangeHeader(ss.n))
			writeErr(w, http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID", fmt.Sprintf("chunk %q does not start at offset %d", cr, ss.n))
			return false
		}
	}
	n, err := io.Copy(io.MultiWriter(ss.f, ss.h), r.Body)
	ss.n += n
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "BLOB_UPLOAD_INVALID", "upload chunk: "+err.Error())
		return false
	}
	return true
}

// finishUpload verifies the session's bytes against the digest the client
// names and commits them into the content store.
func (s *Server) finishUpload(w http.ResponseWriter, r *http.Request, repo, id string, ss *session) {
	dg := r.URL.Query().Get("digest")
	d, err := v1.NewHash(dg)
	if err != nil {
		writeErr(w, http.StatusBadRequest, "DIGEST_INVALID", "closing an upload needs ?digest=sha256:…, got "+strconv.Quote(dg))
		return
	}
	defer s.dropSession(id, ss)
	if got := "sha256:" + hex.EncodeToString(ss.h.Sum(nil)); got != d.String() {
		writeErr(w, http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("uploaded content hashes to %s, not %s: the blob is corrupt and was not stored", got, d))
		return
	}
	if _, err := ss.f.Seek(0, io.SeekStart); err != nil {
		writeErr(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	if err := s.commitBlob(r.Context(), d, ss.n, ss.f); err != nil {
		blobErr(w, d, err)
		return
	}
	blobCreated(w, repo, d)
}

func blobErr(w http.ResponseWriter, d v1.Hash, err error) {
	if errors.Is(err, content.ErrDigestMismatch) || errors.Is(err, content.ErrSizeMismatch) {
		writeErr(w, http.StatusBadRequest, "DIGEST_INVALID", "blob "+d.String()+" refused: "+err.Error()+" (not stored)")
		return
	}
	writeErr(w, http.StatusInternalServerError, "UNKNOWN", "blob "+d.String()+": "+err.Error())
}

func blobCreated(w http.ResponseWriter, repo string, d v1.Hash) {
	w.Header().Set("Location", "/v2/"+repo+"/blobs/"+d.String())
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

func uploadStatus(w http.ResponseWriter, loc, id string, n int64, code int) {
	w.Header().Set("Location", loc)
	w.Header().Set("Docker-Upload-UUID", id)
	w.Header().Set("Range", rangeHeader(n))
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(code)
}

// rangeHeader is the Range of an upload holding n bytes ("0-(n-1)").
func rangeHeader(n int64) string {
	if n == 0 {
		return "0-0"
	}
	return "0-" + strconv.FormatInt(n-1, 10)
}

// parseRange reads a Content-Range "start-end" (an optional "bytes " prefix).
func parseRange(s string) (start, end int64, ok bool) {
	s = strings.TrimPrefix(s, "bytes ")
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	return start, end, err1 == nil && err2 == nil && start <= end
}
