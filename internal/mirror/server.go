package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/image"
)

// MaxManifest is the largest manifest the mirror accepts (distribution's limit).
const MaxManifest = 4 << 20

// Server is the mirror over one image store. Handler serves it.
type Server struct {
	img     *image.Store
	log     *slog.Logger
	uploads string // directory of chunked upload sessions

	mu        sync.Mutex
	sessions  map[string]*session
	swept     time.Time     // last sweep of expired upload leases
	uploadTTL time.Duration // how long a pushed blob waits for its manifest

	writeBack *WriteBack   // nil: images pushed under ?ns= stay local
	upstreams []Upstream   // configured name mappings
	prepare   chan v1.Hash // pushed images to get ready to run (nil: none)
}

// WithWriteBack makes images pushed under an upstream name (?ns=, or a
// configured mapping) be pushed upstream by wb.
func (s *Server) WithWriteBack(wb *WriteBack) *Server { s.writeBack = wb; return s }

// WithUploadTTL sets how long a pushed blob is kept waiting for a
// manifest that references it (DefaultUploadTTL).
func (s *Server) WithUploadTTL(d time.Duration) *Server { s.uploadTTL = d; return s }

// New returns a mirror over img whose chunked uploads live in uploadDir
// (on the content store's filesystem). Sessions a previous daemon left
// there are resumed when their clients come back; those older than the
// upload TTL are removed here.
func New(img *image.Store, uploadDir string, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(uploadDir, 0o700); err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	s := &Server{img: img, log: log, uploads: uploadDir, sessions: map[string]*session{}, uploadTTL: DefaultUploadTTL}
	if err := s.cleanUploads(); err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	return s, nil
}

// Serve serves the mirror on l until ctx ends.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("mirror on %s: %w", l.Addr(), err)
	}
	return nil
}

// ServeHTTP routes /v2/ requests.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	p := r.URL.Path
	if p == "/v2" || p == "/v2/" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeErr(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "method not allowed")
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	if !strings.HasPrefix(p, "/v2/") {
		writeErr(w, http.StatusNotFound, "NOT_FOUND", "not a registry path")
		return
	}
	rest := p[len("/v2/"):]
	if repo, ok := strings.CutSuffix(rest, "/tags/list"); ok {
		s.tags(w, r, repo)
		return
	}
	if i := strings.LastIndex(rest, "/blobs/uploads"); i > 0 {
		id := strings.TrimPrefix(rest[i+len("/blobs/uploads"):], "/")
		s.upload(w, r, rest[:i], id)
		return
	}
	if i := strings.LastIndex(rest, "/blobs/"); i > 0 {
		s.blob(w, r, rest[:i], rest[i+len("/blobs/"):])
		return
	}
	if i := strings.LastIndex(rest, "/manifests/"); i > 0 {
		s.manifest(w, r, rest[:i], rest[i+len("/manifests/"):])
		return
	}
	writeErr(w, http.StatusNotFound, "NOT_FOUND", "unknown registry path")
}
