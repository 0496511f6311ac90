package dockerapi

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/errdefs"
)

// The API versions served. MaxAPIVersion is what github.com/moby/moby/api
// v1.57 describes; a client asking for less gets the same shapes (fields
// newer clients added are ignored by older ones).
const (
	MinAPIVersion = "1.44"
	MaxAPIVersion = "1.57"
)

// Config is what the server is built on: ferry's own services.
type Config struct {
	Machines Machines
	Images   Images
	Networks Networks // nil: /networks answers 501
	Volumes  Volumes  // nil: /volumes answers 501
	Builder  Builder  // nil: POST /build answers 501
	// Root is the daemon's data directory (DockerRootDir of /info).
	Root    string
	Version string // ferry's version ("dev" when empty)
	Logger  *slog.Logger
}

// Server answers Docker Engine API requests.
type Server struct {
	cfg   Config
	mux   *http.ServeMux
	log   *slog.Logger
	execs *execs
}

// New returns a server over cfg's services.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), log: cfg.Logger, execs: newExecs()}
	s.routes()
	return s
}

// handlerFunc is a handler whose error becomes Docker's error reply.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (s *Server) handle(pattern string, h handlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w}
		err := h(rec, r)
		if err == nil {
			return
		}
		status := errdefs.HTTPStatus(err)
		switch {
		case r.Context().Err() != nil:
		case status >= http.StatusInternalServerError:
			s.log.Error("docker api request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
		default:
			s.log.Debug("docker api error", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
		}
		if !rec.wrote {
			writeError(w, err)
		}
	})
}

var versionRE = regexp.MustCompile(`^/v([0-9]+\.[0-9]+)/`)

type versionKey struct{}

// ServeHTTP strips the /vX.Y prefix (refusing versions outside the range
// served, as dockerd does) and routes the request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Api-Version", MaxAPIVersion)
	w.Header().Set("Server", "Ferry/"+s.cfg.Version+" (linux)")
	w.Header().Set("Ostype", "linux")
	version := MaxAPIVersion
	if m := versionRE.FindStringSubmatch(r.URL.Path); m != nil {
		version = m[1]
		switch {
		case compareVersions(version, MinAPIVersion) < 0:
			writeError(w, invalid("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", version, MinAPIVersion))
			return
		case compareVersions(version, MaxAPIVersion) > 0:
			writeError(w, invalid("client version %s is too new. Maximum supported API version is %s", version, MaxAPIVersion))
			return
		}
		r.URL.Path = r.URL.Path[len(m[0])-1:]
		r.URL.RawPath = ""
	}
	s.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), versionKey{}, version)))
}

// compareVersions compares "major.minor" strings numerically.
func compareVersions(a, b string) int {
	pa, pb := strings.SplitN(a, ".", 2), strings.SplitN(b, ".", 2)
	for i := range 2 {
		x, _ := strconv.Atoi(at(pa, i))
		y, _ := strconv.Atoi(at(pb, i))
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return ""
}

// Serve answers requests on l until ctx ends. A non-empty token requires
// "Authorization: Bearer <token>" (the docker CLI sends it from the
// HttpHeaders of its config.json); tlsCfg, when set, wraps l (with client
// certificates required by the caller's config).
func (s *Server) Serve(ctx context.Context, l net.Listener, token string, tlsCfg *tls.Config) error {
	var h http.Handler = s
	base := ctx
	if token != "" || tlsCfg != nil {
		// A remote client: host privileges (bind mounts) follow the
		// daemon's policy for them, as on ferry's TCP API.
		base = api.WithRemote(ctx)
	}
	if token != "" {
		want := []byte("Bearer " + token)
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
				writeError(w, &apiError{msg: "missing or wrong API token: set it in the docker CLI's config.json HttpHeaders (Authorization: Bearer TOKEN)", kind: errdefs.ErrUnauthorized})
				return
			}
			s.ServeHTTP(w, r)
		})
	}
	if tlsCfg != nil {
		l = tls.NewListener(l, tlsCfg)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return base }}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// apiError is an error whose message is what Docker would say, of an
// errdefs kind (which sets the status).
type apiError struct {
	msg  string
	kind error
}

func (e *apiError) Error() string { return e.msg }
func (e *apiError) Unwrap() error { return e.kind }

func invalid(format string, a ...any) error {
	return &apiError{msg: sprintf(format, a...), kind: errdefs.ErrInvalidArgument}
}

func notFound(format string, a ...any) error {
	return &apiError{msg: sprintf(format, a...), kind: errdefs.ErrNotFound}
}

func conflict(format string, a ...any) error {
	return &apiError{msg: sprintf(format, a...), kind: errdefs.ErrConflict}
}

// errNotImplemented is a 501 (errdefs has no such kind: only this API
// needs it).
type errNotImplemented struct{ msg string }

func (e errNotImplemented) Error() string { return e.msg }

// writeError writes Docker's error body with the status of err's kind.
func writeError(w http.ResponseWriter, err error) {
	status := errdefs.HTTPStatus(err)
	var ni errNotImplemented
	if errors.As(err, &ni) {
		status = http.StatusNotImplemented
	}
	writeJSON(w, status, map[string]string{"message": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// decodeJSON reads a request body (unknown fields are allowed: clients of
// every version send what they know).
func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 8<<20))
	if err := dec.Decode(v); err != nil {
		return invalid("invalid JSON: %v", err)
	}
	return nil
}

// recorder notes whether a handler started its response.
type recorder struct {
	http.ResponseWriter
	wrote bool
}

func (r *recorder) WriteHeader(code int) { r.wrote = true; r.ResponseWriter.WriteHeader(code) }
func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// flush sends what is buffered (headers included).
func flush(w http.ResponseWriter) { _ = http.NewResponseController(w).Flush() }

func boolParam(r *http.Request, name string) bool {
	v := r.URL.Query().Get(name)
	b, err := strconv.ParseBool(v)
	return err == nil && b || v == "yes"
}
