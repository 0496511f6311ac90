package registry

import (
	"net/http"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/ferryvm/ferry/internal/registry/auth"
)

// routes is the top of the handler tree. It does not use http.ServeMux on
// purpose: ServeMux cleans paths ("/v2/a/../b" → redirect), and the name
// checks below must see exactly what the client sent.
func (s *Server) routes() http.Handler {
	token := auth.TokenHandler(s.store, s.iss, s.log)
	health := http.HandlerFunc(s.serveHealth)
	metrics := s.metrics.handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case p == "/v2" || strings.HasPrefix(p, "/v2/"):
			s.serveV2(w, r)
		case p == "/token":
			s.metrics.observe(w, r, "token", token)
		case p == "/healthz":
			health.ServeHTTP(w, r)
		case p == "/metrics":
			metrics.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

// serveError writes a distribution-style error body.
func serveError(w http.ResponseWriter, code errcode.ErrorCode, detail any) {
	e := code.WithDetail(detail)
	_ = errcode.ServeJSON(w, e)
}

// serveErrorStatus writes a distribution-style error body with a status
// other than the code's own (e.g. UNSUPPORTED as 415 rather than 405).
func serveErrorStatus(w http.ResponseWriter, status int, e errcode.Error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = errcode.ServeJSON(discardStatus{w}, e)
}
