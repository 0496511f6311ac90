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

	"github.com/ferryvm/ferry/internal/registry/store"
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
	tr := newTestRegistry(t, func(c *Config) { c.MetricsToken = "metrics-secret" })
	acme := bearer(tr.org(t, "acme", store.ScopePush))
	tr.do(t, call{method: "GET", path: "/v2/"})
	if r := tr.do(t, call{method: "GET", path: "/healthz"}); r.status != 200 || !strings.Contains(r.body, "ok") {
		t.Fatalf("/healthz: %d %s", r.status, r.body)
	}
	// /metrics names every org's traffic: no tenant reads it.
	for name, auth := range map[string]string{"anonymous": "", "an org's token": acme, "wrong token": "Bearer metrics-secreT"} {
		if r := tr.do(t, call{method: "GET", path: "/metrics", auth: auth}); r.status != http.StatusUnauthorized || strings.Contains(r.body, "ferry_registry") {
			t.Fatalf("/metrics as %s: %d %.100s", name, r.status, r.body)
		}
	}
	if r := tr.do(t, call{method: "GET", path: "/metrics", auth: "Bearer metrics-secret"}); r.status != 200 || !strings.Contains(r.body, "ferry_registry_requests_total") {
		t.Fatalf("/metrics with the token: %d %.200s", r.status, r.body)
	}
	// Without a token, /metrics is not on the main listener at all, and
	// MetricsHandler serves it for a listener of its own.
	plain := newTestRegistry(t)
	if r := plain.do(t, call{method: "GET", path: "/metrics"}); r.status != http.StatusNotFound {
		t.Fatalf("/metrics without metrics_token: %d", r.status)
	}
	rec := httptest.NewRecorder()
	plain.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "ferry_registry_auth_failures_total") {
		t.Fatalf("MetricsHandler: %d", rec.Code)
	}
}
