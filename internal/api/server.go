package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// HandlerFunc is an API handler; a returned error becomes a JSON error reply
// (unless the handler already started writing its response).
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Server routes API requests to the registered resource handlers.
type Server struct {
	mux *http.ServeMux
	log *slog.Logger
}

// NewServer returns a server with no routes but GET /v1/_ping.
func NewServer(log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{mux: http.NewServeMux(), log: log}
	s.Handle("GET /v1/_ping", func(w http.ResponseWriter, r *http.Request) error {
		return WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return s
}

// Handle registers h for a net/http pattern such as "GET /v1/images/{ref...}".
func (s *Server) Handle(pattern string, h HandlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		err := h(rec, r)
		if err == nil {
			return
		}
		switch {
		case r.Context().Err() != nil: // the client went away
		case errdefs.HTTPStatus(err) >= http.StatusInternalServerError:
			s.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "status", errdefs.HTTPStatus(err), "err", err)
		default:
			s.log.Debug("api error", "method", r.Method, "path", r.URL.Path, "status", errdefs.HTTPStatus(err), "err", err)
		}
		if rec.wrote {
			return // headers are gone; the stream's end tells the client
		}
		WriteError(w, err)
	})
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Serve answers requests on l until ctx ends. A non-empty token requires
// "Authorization: Bearer <token>" on every request (used for TCP listeners).
func (s *Server) Serve(ctx context.Context, l net.Listener, token string) error {
	var h http.Handler = s
	base := ctx
	if token != "" {
		h = requireToken(token, s)
		base = context.WithValue(ctx, remoteKey{}, true)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return base }}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

type remoteKey struct{}

// WithRemote marks ctx as a remote client's (RemoteClient), for servers of
// other APIs on TCP listeners (the Docker Engine API).
func WithRemote(ctx context.Context) context.Context {
	return context.WithValue(ctx, remoteKey{}, true)
}

// RemoteClient reports whether the request behind ctx came over a TCP
// listener (a token-authenticated client, possibly on another host) rather
// than the local unix socket: host privileges such as bind mounts are for
// local clients.
func RemoteClient(ctx context.Context) bool {
	r, _ := ctx.Value(remoteKey{}).(bool)
	return r
}

func requireToken(token string, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			WriteError(w, fmt.Errorf("missing or wrong API token: %w", errdefs.ErrUnauthorized))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// errorBody is the JSON shape of every error reply.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// WriteError writes err as a JSON error reply with its errdefs status.
func WriteError(w http.ResponseWriter, err error) {
	_ = WriteJSON(w, errdefs.HTTPStatus(err), errorBody{Error: err.Error(), Code: errdefs.Code(err)})
}

// WriteJSON writes v as a JSON reply with status.
func WriteJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// DecodeJSON decodes the request body into v, rejecting unknown fields and
// naming the offending field in the error (an invalid-argument error).
func DecodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 8<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body: %s: %w", describeJSONError(err), errdefs.ErrInvalidArgument)
	}
	if dec.More() {
		return fmt.Errorf("request body: trailing data after JSON value: %w", errdefs.ErrInvalidArgument)
	}
	return nil
}

func describeJSONError(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		return fmt.Sprintf("field %q: expected %s, got %s", te.Field, te.Type, te.Value)
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se)
	case errors.Is(err, io.EOF):
		return "empty body"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return err.Error()
}

// statusRecorder notes whether the handler has started its response.
type statusRecorder struct {
	http.ResponseWriter
	wrote bool
}

func (r *statusRecorder) WriteHeader(code int) { r.wrote = true; r.ResponseWriter.WriteHeader(code) }
func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

// Flush lets streaming handlers flush through the recorder.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection (for Hijack).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
