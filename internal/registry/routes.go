package registry

import (
	"crypto/subtle"
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
		gw, r, body := s.guardTransfer(w, r)
		if body != nil {
			defer body.finish()
		}
		switch p := r.URL.Path; {
		case p == "/v2" || strings.HasPrefix(p, "/v2/"):
			s.serveV2(gw, r, body)
		case p == "/token":
			s.metrics.observe(gw, r, "token", token)
		case p == "/healthz":
			health.ServeHTTP(gw, r)
		case p == "/metrics":
			s.serveMetrics(gw, r, metrics)
		default:
			http.NotFound(gw, r)
		}
	})
}

// serveMetrics serves /metrics on the main listener only to a bearer of
// Config.MetricsToken: the metrics name routes, rates and failures of every
// org, which no tenant should read.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request, metrics http.Handler) {
	want := s.cfg.MetricsToken
	if want == "" || s.cfg.MetricsAddr != "" {
		http.Error(w, "metrics are not served here: set metrics_addr for a listener of their own, or metrics_token", http.StatusNotFound)
		return
	}
	scheme, got, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "bearer") || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(want)) != 1 {
		s.metrics.authFailures.Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
		http.Error(w, "metrics need Authorization: Bearer <metrics_token>", http.StatusUnauthorized)
		return
	}
	metrics.ServeHTTP(w, r)
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
