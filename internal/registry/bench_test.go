package registry

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/opencontainers/go-digest"

	"github.com/ferryvm/ferry/internal/registry/store"
)

// BenchmarkHeadBlob measures one blob HEAD (the commonest request of a
// push) through the embedded distribution app alone and through ferry's
// middleware (JWT or org token, name rewrite, response rewrite). The
// difference is the middleware's per-request cost; bench/README.md records
// it.
func BenchmarkHeadBlob(b *testing.B) {
	s, err := New(context.Background(), Config{Root: b.TempDir(), Storage: map[string]configuration.Parameters{"inmemory": {}}}, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	o, _ := s.store.CreateOrg(ctx, "acme")
	tok, secret, _ := s.store.CreateToken(ctx, "acme", store.NewTokenOpts{})
	jwt, _, _ := s.iss.Issue(tok, []authAccess{{Type: "repository", Name: "web", Actions: []string{"pull", "push"}}})
	blob := []byte("benchmark blob")
	d := digest.FromBytes(blob)
	up := httptest.NewRequest("POST", "/v2/web/blobs/uploads/?digest="+d.String(), bytesReader(blob))
	up.Header.Set("Authorization", "Bearer "+secret)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, up)
	if rec.Code != http.StatusCreated {
		b.Fatalf("setup upload: %d %s", rec.Code, rec.Body)
	}
	internal := NamespaceFor(o.ID).Prefix() + "web"
	run := func(b *testing.B, h http.Handler, path, auth string) {
		req := httptest.NewRequest("HEAD", path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("HEAD: %d", w.Code)
			}
		}
	}
	b.Run("distribution", func(b *testing.B) { run(b, s.app, "/v2/"+internal+"/blobs/"+d.String(), "") })
	b.Run("ferry-jwt", func(b *testing.B) { run(b, s.Handler(), "/v2/web/blobs/"+d.String(), "Bearer "+jwt) })
	b.Run("ferry-org-token", func(b *testing.B) { run(b, s.Handler(), "/v2/web/blobs/"+d.String(), "Bearer "+secret) })
	// The middleware alone: the same request with distribution replaced by
	// a stub that answers like a blob HEAD.
	app := s.app
	s.app = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Docker-Content-Digest", d.String())
		w.Header().Set("Content-Length", "14")
		w.WriteHeader(http.StatusOK)
	})
	b.Cleanup(func() { s.app = app })
	b.Run("stub", func(b *testing.B) { run(b, s.app, "/v2/"+internal+"/blobs/"+d.String(), "") })
	b.Run("middleware-jwt", func(b *testing.B) { run(b, s.Handler(), "/v2/web/blobs/"+d.String(), "Bearer "+jwt) })
	b.Run("middleware-org-token", func(b *testing.B) { run(b, s.Handler(), "/v2/web/blobs/"+d.String(), "Bearer "+secret) })
}
