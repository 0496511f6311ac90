package registry

import (
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
)

// routeParams are the query parameters each route takes: the only ones
// the middleware passes on to distribution (or reads itself). Others are
// dropped (clients add harmless ones, e.g. containerd's "ns").
var routeParams = map[string][]string{
	routeUpload:     {"mount", "from", "digest"},
	routeUploadPart: {"_state", "digest"},
	routeTags:       {"n", "last"},
	routeCatalog:    {"n", "last"},
	routeReferrers:  {"artifactType"},
}

// paramsFor narrows routeParams to the method: mount/from/digest only open
// an upload (POST), digest only completes one (PUT).
func paramsFor(routeName, method string) []string {
	switch {
	case routeName == routeUpload && method != http.MethodPost:
		return nil
	case routeName == routeUploadPart && method != http.MethodPut:
		return []string{"_state"}
	}
	return routeParams[routeName]
}

// paramError is a request refused for how it passes parameters.
type paramError struct {
	status int
	msg    string
}

func (e *paramError) Error() string { return e.msg }

// requestParams is the one place a request's parameters are read: from
// the query only, strictly decoded, each at most once, restricted to what
// the route takes. Parameters anywhere else are refused: a form-encoded
// body (distribution's FormValue would read it), a second Content-Type
// (which one would a reader pick?), a malformed or duplicated query.
func requestParams(r *http.Request, routeName string) (url.Values, error) {
	if cts := r.Header.Values("Content-Type"); len(cts) > 1 {
		return nil, &paramError{http.StatusBadRequest, "more than one Content-Type header"}
	} else if len(cts) == 1 && isFormType(cts[0]) {
		return nil, &paramError{http.StatusUnsupportedMediaType,
			"form-encoded bodies are not accepted: send parameters in the URL query and blob data as application/octet-stream"}
	}
	raw, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, &paramError{http.StatusBadRequest, "malformed query: " + err.Error()}
	}
	q := url.Values{}
	for _, k := range paramsFor(routeName, r.Method) {
		switch vs := raw[k]; len(vs) {
		case 0:
		case 1:
			q.Set(k, vs[0])
		default:
			return nil, &paramError{http.StatusBadRequest, fmt.Sprintf("query parameter %q given %d times: give it once", k, len(vs))}
		}
	}
	return q, nil
}

// isFormType reports whether a Content-Type names a body that Go's
// ParseForm/ParseMultipartForm would read parameters from. It is lenient
// on purpose (case, spaces, parameters, even a malformed tail), so nothing
// a parser might accept gets through.
func isFormType(ct string) bool {
	t, _, _ := strings.Cut(ct, ";")
	t = strings.ToLower(strings.TrimSpace(t))
	return t == "application/x-www-form-urlencoded" || strings.HasPrefix(t, "multipart/")
}

// sealParams makes q the whole of what a handler can read as parameters:
// the query is re-encoded from q, and the parsed forms are filled in, so
// FormValue, ParseForm and ParseMultipartForm see exactly q and never read
// the body.
func sealParams(r *http.Request, q url.Values) {
	r.URL.RawQuery = q.Encode()
	r.RequestURI = r.URL.RequestURI()
	r.Form = url.Values{}
	for k, vs := range q {
		r.Form[k] = append([]string(nil), vs...)
	}
	r.PostForm = url.Values{}
	r.MultipartForm = &multipart.Form{Value: map[string][]string{}, File: map[string][]*multipart.FileHeader{}}
}

// forwardingHeaders are the request headers distribution would build
// absolute URLs from. Its URLs are relative (Config.HTTP.RelativeURLs), and
// these are dropped so nothing a client sends names a host.
var forwardingHeaders = []string{"Forwarded", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port"}

// dispatch hands a request to distribution with q as its only parameters.
// Every request the middleware passes on goes through here.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request, q url.Values) {
	sealParams(r, q)
	for _, h := range forwardingHeaders {
		r.Header.Del(h)
	}
	s.app.ServeHTTP(w, r)
}
