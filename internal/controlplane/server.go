package controlplane

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Duration is a time.Duration that reads and writes as "10s" in JSON.
type Duration time.Duration

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

// DefaultLeaseTTL is how long a lease lasts without renewal.
const DefaultLeaseTTL = 10 * time.Second

// Server serves the control plane's HTTP API:
//
//	POST /v1/hosts              register (body: Host) → Lease, a new generation
//	POST /v1/hosts/{id}/lease   renew (body: RenewRequest) → Lease; 409 when lost
//	GET  /v1/hosts              → []HostStatus
//	GET  /v1/hosts/{id}/machines  the host's desired set → []Machine
//	POST /v1/apps/{app}/volumes   create a volume (body: {name, size_mb}) → Placement, its home
//	/v1/apps/{app}/machines…      the Machines API across hosts (machines_api.go)
//
// Every request needs "Authorization: Bearer <token>".
type Server struct {
	store *Store
	token string
	ttl   time.Duration
	log   *slog.Logger
	// ReapGrace is how long the database must have answered this replica
	// before it places the machines of hosts whose leases expired
	// (NewServer: the lease TTL plus RetryMax, time for every host to
	// renew after the control plane was away).
	ReapGrace time.Duration
	// clients are API clients of the hosts, by address and token.
	clients sync.Map
}

// NewServer serves st; token is the bearer token hosts and clients must
// present, ttl the lease length (0: DefaultLeaseTTL).
func NewServer(st *Store, token string, ttl time.Duration, log *slog.Logger) (*Server, error) {
	if token == "" {
		return nil, fmt.Errorf("controlplane: a token is required (--token or FERRY_CONTROLPLANE_TOKEN): %w", errdefs.ErrInvalidArgument)
	}
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	if log == nil {
		log = slog.Default()
	}
	return &Server{store: st, token: token, ttl: ttl, log: log, ReapGrace: ttl + RetryMax}, nil
}

// RenewRequest is the body of a lease renewal.
type RenewRequest struct {
	Generation int64    `json:"generation"`
	Free       Capacity `json:"free"`
}

var hostID = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Handler is the API's handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/hosts", s.register)
	mux.HandleFunc("POST /v1/hosts/{id}/lease", s.renew)
	mux.HandleFunc("GET /v1/hosts", s.hosts)
	mux.HandleFunc("GET /v1/hosts/{id}/machines", s.hostMachines)
	mux.HandleFunc("POST /v1/apps/{app}/volumes", s.createVolume)
	s.registerMachines(mux)
	s.overlayRoutes(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) != 1 {
			writeError(w, http.StatusUnauthorized, "the control plane needs Authorization: Bearer <its token> (ferry daemon --join-token)")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		mux.ServeHTTP(w, r)
	})
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	var h Host
	if err := json.NewDecoder(r.Body).Decode(&h); err != nil {
		writeError(w, http.StatusBadRequest, "register: body is not a host: "+err.Error())
		return
	}
	if !hostID.MatchString(h.ID) || h.Addr == "" || h.Size.CPUs <= 0 || h.Size.MemoryMB <= 0 {
		writeError(w, http.StatusBadRequest, "register: a host needs an id ([a-z0-9-], 1-63), an addr and a capacity with cpus and memory_mb")
		return
	}
	if h.Name == "" {
		h.Name = h.ID
	}
	l, err := s.store.Register(r.Context(), h, s.ttl)
	if err != nil {
		s.fail(w, err)
		return
	}
	s.log.Info("host registered", "host", h.ID, "name", h.Name, "addr", h.Addr, "generation", l.Generation)
	writeJSON(w, http.StatusOK, l)
}

func (s *Server) renew(w http.ResponseWriter, r *http.Request) {
	var req RenewRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "renew: body is not a renewal: "+err.Error())
		return
	}
	l, err := s.store.Renew(r.Context(), r.PathValue("id"), req.Generation, req.Free, s.ttl)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, l)
}

func (s *Server) hosts(w http.ResponseWriter, r *http.Request) {
	hs, err := s.store.Hosts(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	if hs == nil {
		hs = []HostStatus{}
	}
	writeJSON(w, http.StatusOK, hs)
}

func (s *Server) hostMachines(w http.ResponseWriter, r *http.Request) {
	ms, err := s.store.HostMachines(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ms)
}

func (s *Server) createVolume(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name   string `json:"name"`
		SizeMB int64  `json:"size_mb"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "create volume: body is not {name, size_mb}: "+err.Error())
		return
	}
	p, err := s.store.CreateVolume(r.Context(), r.PathValue("app"), req.Name, req.SizeMB)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, p)
}

// fail answers err with the status of its errdefs kind; anything else is
// the database's failure.
func (s *Server) fail(w http.ResponseWriter, err error) {
	for _, kind := range []error{errdefs.ErrConflict, errdefs.ErrInvalidArgument, errdefs.ErrNotFound, errdefs.ErrAlreadyExists, errdefs.ErrUnavailable} {
		if errors.Is(err, kind) {
			writeError(w, errdefs.HTTPStatus(err), err.Error())
			return
		}
	}
	s.log.Warn("controlplane request failed", "err", err)
	writeError(w, http.StatusServiceUnavailable, "control plane database: "+err.Error())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// Serve serves the API on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	// Every replica reaps; SKIP LOCKED splits the lost hosts among them.
	rctx, stopReap := context.WithCancel(ctx)
	defer stopReap()
	go s.reapLoop(rctx, max(s.ttl/4, 100*time.Millisecond))
	s.log.Info("controlplane serving", "addr", ln.Addr().String(), "lease_ttl", s.ttl)
	select {
	case err := <-errc:
		return fmt.Errorf("controlplane serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
