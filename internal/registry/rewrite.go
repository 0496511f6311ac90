package registry

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// maxRewriteBody bounds the bodies the rewriter buffers (errors and tag
// lists); anything larger passes through unchanged.
const maxRewriteBody = 8 << 20

// rewriter is the response side of the middleware: it maps internal names
// back to the client's in Location and Link headers, in "_state", in tag
// lists and in error details, and streams every other body through.
type rewriter struct {
	http.ResponseWriter
	s                  *Server
	ns                 Namespace
	external, internal string
	route, method      string
	onSuccess          func(http.Header) // manifest PUT: OCI-Subject, catalog
	digestOut          string            // a non-sha256 digest the client asked by
	asked, sent        string            // a digest as the client named it, and as distribution got it
	x                  *exchange         // the request's bookkeeping (nil: none)
	replaced           bool              // the middleware answered instead of distribution

	wroteHeader bool
	status      int
	buffering   bool
	buf         bytes.Buffer
}

func (rw *rewriter) WriteHeader(status int) {
	if rw.wroteHeader {
		return
	}
	rw.wroteHeader = true
	rw.status = status
	h := rw.Header()
	if rw.x != nil {
		if e := rw.x.answer(status, h); e != nil {
			rw.replaced = true
			for _, k := range []string{"Location", "Docker-Content-Digest", "Docker-Upload-Uuid", "Range", "Content-Range", "Content-Length"} {
				h.Del(k)
			}
			writeReply(rw.ResponseWriter, e)
			return
		}
	}
	if loc := h.Get("Location"); loc != "" {
		h.Set("Location", rw.location(loc))
	}
	if links := h.Values("Link"); len(links) > 0 {
		h.Del("Link")
		for _, l := range links {
			h.Add("Link", rw.link(l))
		}
	}
	if rw.digestOut != "" && status < 300 {
		if canon := h.Get("Docker-Content-Digest"); canon != "" && canon != rw.digestOut {
			h.Set("Docker-Content-Digest", rw.digestOut)
			if loc := h.Get("Location"); loc != "" {
				h.Set("Location", strings.Replace(loc, canon, rw.digestOut, 1))
			}
		}
	}
	if status == http.StatusCreated && rw.onSuccess != nil {
		rw.onSuccess(h)
	}
	// Bodies that may name the repository are buffered and fixed in finish.
	if rw.method != http.MethodHead && (status >= 400 || (rw.route == routeTags && status == http.StatusOK)) {
		rw.buffering = true
		return
	}
	rw.ResponseWriter.WriteHeader(status)
}

func (rw *rewriter) Write(b []byte) (int, error) {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	if rw.replaced {
		return len(b), nil
	}
	if rw.buffering {
		if rw.buf.Len()+len(b) > maxRewriteBody {
			rw.flushBuffered(false)
			return rw.ResponseWriter.Write(b)
		}
		return rw.buf.Write(b)
	}
	return rw.ResponseWriter.Write(b)
}

// ReadFrom keeps sendfile for blob downloads.
func (rw *rewriter) ReadFrom(src io.Reader) (int64, error) {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	if rw.replaced {
		return io.Copy(io.Discard, src)
	}
	if rf, ok := rw.ResponseWriter.(io.ReaderFrom); ok && !rw.buffering {
		return rf.ReadFrom(src)
	}
	return io.Copy(writerOnly{rw}, src)
}

// Flush forwards to the underlying writer when streaming.
func (rw *rewriter) Flush() {
	if f, ok := rw.ResponseWriter.(http.Flusher); ok && !rw.buffering {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (rw *rewriter) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

type writerOnly struct{ io.Writer }

// finish writes a buffered body, rewritten.
func (rw *rewriter) finish() {
	if rw.buffering {
		rw.flushBuffered(true)
	}
}

func (rw *rewriter) flushBuffered(rewrite bool) {
	rw.buffering = false
	body := rw.buf.Bytes()
	if rewrite {
		body = rw.body(body)
		rw.Header().Set("Content-Length", strconv.Itoa(len(body)))
	} else {
		rw.Header().Del("Content-Length")
	}
	rw.ResponseWriter.WriteHeader(rw.status)
	_, _ = rw.ResponseWriter.Write(body)
	rw.buf = bytes.Buffer{}
}

// body rewrites a buffered body: a tag list's name, or any mention of the
// internal prefix in an error.
func (rw *rewriter) body(b []byte) []byte {
	if rw.route == routeTags && rw.status == http.StatusOK {
		var tl struct {
			Name string   `json:"name"`
			Tags []string `json:"tags"`
		}
		if err := json.Unmarshal(b, &tl); err == nil {
			tl.Name = rw.external
			if tl.Tags == nil {
				tl.Tags = []string{}
			}
			if out, err := json.Marshal(tl); err == nil {
				return out
			}
		}
	}
	if rw.asked != "" && rw.sent != "" && rw.asked != rw.sent {
		// Errors name the digest as the client asked for it.
		b = bytes.ReplaceAll(b, []byte(rw.sent), []byte(rw.asked))
	}
	return bytes.ReplaceAll(b, []byte(rw.ns.Prefix()), nil)
}

// location maps a Location (absolute or relative) back to the client's
// view; URLs elsewhere (a storage redirect) are left alone.
func (rw *rewriter) location(loc string) string {
	u, err := url.Parse(loc)
	if err != nil {
		return loc
	}
	rest, ok := strings.CutPrefix(u.Path, "/v2/"+rw.ns.Prefix())
	if !ok {
		return loc
	}
	u.Path, u.RawPath = "/v2/"+rest, ""
	if u.RawQuery != "" {
		q := u.Query()
		if st := q.Get("_state"); st != "" {
			q.Set("_state", rw.s.stateOut(st, rw.ns))
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}

// link rewrites one Link header value: `<url>; rel="next"`.
func (rw *rewriter) link(l string) string {
	start, end := strings.Index(l, "<"), strings.Index(l, ">")
	if start < 0 || end < start {
		return l
	}
	return l[:start+1] + rw.location(l[start+1:end]) + l[end:]
}
