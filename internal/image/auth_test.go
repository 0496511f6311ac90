package image

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/testimage"
)

// tokenAuth puts a Docker-style token service in front of a registry:
// /v2/ answers 401 with a Bearer challenge, /token trades basic auth
// (user:pass) for a token, and the registry accepts only that token.
func tokenAuth(user, pass string) func(http.Handler) http.Handler {
	const token = "tok-123"
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/token" {
				u, p, ok := r.BasicAuth()
				if !ok || u != user || p != pass {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				json.NewEncoder(w).Encode(map[string]string{"token": token})
				return
			}
			if r.Header.Get("Authorization") != "Bearer "+token {
				w.Header().Set("Www-Authenticate", `Bearer realm="http://`+r.Host+`/token",service="test"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func TestLoginBearerPull(t *testing.T) {
	ctx := context.Background()
	cfgDir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", cfgDir)
	os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(`{"auths":{},"psFormat":"table"}`), 0o600)

	host := testimage.Serve(t, tokenAuth("alice", "s3cret"))
	img := must[v1.Image](t)(testimage.Random(80, 1, 1024))
	s, _ := newStore(t)
	// Pushing/pulling without credentials: 401, one line, says what to do.
	if _, err := s.Pull(ctx, host+"/private:1"); !errors.Is(err, errdefs.ErrUnauthorized) || !strings.Contains(err.Error(), "ferry login "+host) {
		t.Fatalf("anonymous pull: %v", err)
	}
	if err := Login(ctx, host, "alice", "wrong"); !errors.Is(err, errdefs.ErrUnauthorized) {
		t.Fatalf("bad login: %v", err)
	}
	if err := Login(ctx, host, "alice", "s3cret"); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	b, _ := os.ReadFile(filepath.Join(cfgDir, "config.json"))
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc["psFormat"] != "table" {
		t.Error("login dropped other keys")
	}
	auth := doc["auths"].(map[string]any)[host].(map[string]any)["auth"]
	if auth != base64.StdEncoding.EncodeToString([]byte("alice:s3cret")) {
		t.Errorf("auth entry %v", auth)
	}
	if fi, _ := os.Stat(filepath.Join(cfgDir, "config.json")); fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode %v", fi.Mode())
	}
	// With stored credentials: push (via the library) and pull work.
	src, _ := newStore(t)
	other := testimage.Registry(t)
	must[*PullResult](t)(src.Pull(ctx, testimage.Push(t, other, "src:1", img)))
	if _, err := src.Push(ctx, other+"/src:1", host+"/private:1"); err != nil {
		t.Fatal(err)
	}
	res := must[*PullResult](t)(s.Pull(ctx, host+"/private:1"))
	if res.Image.ID != must[v1.Hash](t)(img.Digest()) {
		t.Error("digest differs")
	}
	if err := Logout(host); err != nil {
		t.Fatal(err)
	}
	if err := Logout(host); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("second logout: %v", err)
	}
	if AuthKey("") != DockerHubAuthKey || AuthKey("docker.io") != DockerHubAuthKey || AuthKey("https://ghcr.io/v2/") != "ghcr.io" {
		t.Error("AuthKey")
	}
}

func TestPushProgressAndMount(t *testing.T) {
	ctx := context.Background()
	host := testimage.Registry(t)
	img := must[v1.Image](t)(testimage.Random(90, 2, 64<<10))
	s, _ := newStore(t)
	must[*PullResult](t)(s.Pull(ctx, testimage.Push(t, host, "orig/a:1", img)))
	var states []State
	d, err := s.Push(ctx, host+"/orig/a:1", host+"/copy/b:2", PushProgress(func(p Progress) { states = append(states, p.State) }))
	if err != nil {
		t.Fatal(err)
	}
	if d != must[v1.Hash](t)(img.Digest()) {
		t.Error("pushed digest differs")
	}
	// Same registry, other repo: layers are mounted, never uploaded.
	for _, st := range states {
		if st == StatePushing {
			t.Errorf("a layer was uploaded instead of mounted: %v", states)
			break
		}
	}
	s2, _ := newStore(t)
	if res := must[*PullResult](t)(s2.Pull(ctx, host+"/copy/b:2")); res.Image.ID != d {
		t.Error("pull of pushed image differs")
	}
}

// basicAuth answers 401 with a Basic challenge unless user:pass is sent.
func basicAuth(user, pass string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
				w.Header().Set("Www-Authenticate", `Basic realm="test"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// anonymousToken hands a token to anyone who asks (Docker Hub's public pulls).
func anonymousToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			if r.URL.Query().Get("scope") == "" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			json.NewEncoder(w).Encode(map[string]string{"access_token": "anon"})
			return
		}
		if r.Header.Get("Authorization") != "Bearer anon" {
			w.Header().Set("Www-Authenticate", `Bearer realm="http://`+r.Host+`/token",service="test",scope="repository:x:pull"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func TestAuthSchemes(t *testing.T) {
	ctx := context.Background()
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	img := must[v1.Image](t)(testimage.Random(160, 1, 1024))
	src, _ := newStore(t)
	plain := testimage.Registry(t)
	must[*PullResult](t)(src.Pull(ctx, testimage.Push(t, plain, "src:1", img)))

	anon := testimage.Serve(t, anonymousToken)
	if _, err := src.Push(ctx, plain+"/src:1", anon+"/pub:1"); err != nil {
		t.Fatalf("push via anonymous token: %v", err)
	}
	s, _ := newStore(t)
	if _, err := s.Pull(ctx, anon+"/pub:1"); err != nil {
		t.Fatalf("anonymous token pull: %v", err)
	}

	basic := testimage.Serve(t, basicAuth("bob", "pw"))
	if _, err := s.Pull(ctx, basic+"/x:1"); !errors.Is(err, errdefs.ErrUnauthorized) {
		t.Fatalf("basic without credentials: %v", err)
	}
	if err := Login(ctx, basic, "bob", "pw"); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Push(ctx, plain+"/src:1", basic+"/x:1"); err != nil {
		t.Fatalf("push with basic auth: %v", err)
	}
	if _, err := s.Pull(ctx, basic+"/x:1"); err != nil {
		t.Fatalf("basic pull: %v", err)
	}
	// PullAuth overrides the keychain.
	s2, _ := newStore(t, WithKeychain(authn.NewMultiKeychain()))
	if _, err := s2.Pull(ctx, basic+"/x:1", PullAuth(&authn.Basic{Username: "bob", Password: "pw"})); err != nil {
		t.Fatalf("PullAuth: %v", err)
	}
}
