package registry

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver"
)

// serveHealth answers 200 when the database and storage answer, 503
// otherwise (unauthenticated: it reveals nothing but liveness).
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.store.Ping(ctx); err != nil {
		http.Error(w, "database unavailable", http.StatusServiceUnavailable)
		return
	}
	var notFound driver.PathNotFoundError
	if _, err := s.driver.Stat(ctx, "/"); err != nil && !errors.As(err, &notFound) {
		http.Error(w, "storage unavailable", http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}
