package auth

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/ferryvm/ferry/internal/registry/store"
)

// Authenticator checks a ferry token secret.
type Authenticator interface {
	Authenticate(ctx context.Context, secret string) (store.Token, error)
}

// tokenResponse is the token endpoint's answer (both names for the token:
// "token" for Docker clients, "access_token" for OAuth2 ones).
type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

// TokenHandler serves the token endpoint: GET with basic auth (org name +
// ferry token) per the Docker token spec, and POST with
// grant_type=password (username/password form fields) per its OAuth2
// variant. The token carries the requested scopes the ferry token allows;
// the rest are left out, never refused with an error.
func TokenHandler(authn Authenticator, iss *Issuer, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var user, pass string
		var scopes []string
		switch r.Method {
		case http.MethodGet:
			var ok bool
			user, pass, ok = r.BasicAuth()
			if !ok {
				unauthorized(w, iss, "credentials required")
				return
			}
			scopes = r.URL.Query()["scope"]
		case http.MethodPost:
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			if err := r.ParseForm(); err != nil {
				writeJSONError(w, http.StatusBadRequest, "invalid_request", "malformed form")
				return
			}
			switch r.PostForm.Get("grant_type") {
			case "password":
				user, pass = r.PostForm.Get("username"), r.PostForm.Get("password")
			case "refresh_token": // a ferry token works as a refresh token
				user, pass = "", r.PostForm.Get("refresh_token")
			default:
				writeJSONError(w, http.StatusBadRequest, "unsupported_grant_type", "use grant_type=password")
				return
			}
			scopes = r.PostForm["scope"]
		default:
			w.Header().Set("Allow", "GET, POST")
			writeJSONError(w, http.StatusMethodNotAllowed, "invalid_request", "GET or POST")
			return
		}
		t, err := authn.Authenticate(r.Context(), pass)
		if err != nil || (user != "" && user != t.Org) {
			log.Info("registry token refused", "user", user, "remote", r.RemoteAddr)
			unauthorized(w, iss, "invalid credentials")
			return
		}
		if svc := r.FormValue("service"); svc != "" && svc != iss.Service() {
			writeJSONError(w, http.StatusBadRequest, "invalid_request", "unknown service")
			return
		}
		granted := Grant(t, ParseScopes(scopes))
		tok, issued, err := iss.Issue(t, granted)
		if err != nil {
			log.Error("registry token", "err", err)
			writeJSONError(w, http.StatusInternalServerError, "server_error", "could not sign token")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		// The token endpoint's reply is the token (Docker's token auth spec).
		_ = json.NewEncoder(w).Encode(tokenResponse{ //nolint:gosec // G117: handing out the token is this handler's job
			Token: tok, AccessToken: tok,
			ExpiresIn: int(iss.TTL() / time.Second), IssuedAt: issued.Format(time.RFC3339),
		})
	})
}

func unauthorized(w http.ResponseWriter, iss *Issuer, msg string) {
	w.Header().Set("WWW-Authenticate", `Basic realm="`+iss.Service()+`"`)
	writeJSONError(w, http.StatusUnauthorized, "unauthorized", msg)
}

func writeJSONError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"error": code, "error_description": msg,
		"errors": []map[string]string{{"code": "UNAUTHORIZED", "message": msg}},
	})
}
