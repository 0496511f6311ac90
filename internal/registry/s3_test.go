package registry

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestS3StorageWired loads a config naming distribution's s3 driver (at an
// endpoint where nothing listens) and checks the server builds with it and
// reports the storage as unavailable: the driver is linked and configured
// from ferry's config file; talking to a real S3 is distribution's tested
// code.
func TestS3StorageWired(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "registry.yaml")
	if err := os.WriteFile(conf, []byte(`
root: `+dir+`
addr: 127.0.0.1:0
storage:
  s3:
    region: us-east-1
    regionendpoint: http://127.0.0.1:1
    bucket: ferry-test
    accesskey: test
    secretkey: test
    forcepathstyle: true
  redirect:
    disable: true
token_ttl: 2m
gc_grace: 30m
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Storage.Type() != "s3" || cfg.TokenTTL.Minutes() != 2 {
		t.Fatalf("config: %+v", cfg)
	}
	s, err := New(context.Background(), cfg, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("healthz with unreachable S3: %d %s", rec.Code, rec.Body)
	}
}

func TestLoadConfigRejectsUnknownKeys(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "r.yaml")
	_ = os.WriteFile(conf, []byte("root: /x\nstorge: {}\n"), 0o600)
	if _, err := LoadConfig(conf); err == nil {
		t.Fatal("typo in config accepted")
	}
}

func TestHealthAndMetrics(t *testing.T) {
	tr := newTestRegistry(t)
	for path, want := range map[string]string{"/healthz": "ok", "/metrics": "ferry_registry_requests_total"} {
		tr.do(t, call{method: "GET", path: "/v2/"})
		r := tr.do(t, call{method: "GET", path: path})
		if r.status != 200 || !strings.Contains(r.body, want) {
			t.Fatalf("%s: %d %.200s", path, r.status, r.body)
		}
	}
}
