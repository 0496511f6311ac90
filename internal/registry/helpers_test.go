package registry

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/registry/store"
)

// testRegistry is a registry served by httptest with a temp root.
type testRegistry struct {
	*Server
	ts   *httptest.Server
	host string // host:port, as image references want it
	root string
}

func newTestRegistry(t *testing.T, mods ...func(*Config)) *testRegistry {
	t.Helper()
	root := t.TempDir()
	cfg := Config{Root: root}
	for _, m := range mods {
		m(&cfg)
	}
	s, err := New(context.Background(), cfg, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		ts.Close()
		_ = s.Close()
	})
	return &testRegistry{Server: s, ts: ts, host: strings.TrimPrefix(ts.URL, "http://"), root: root}
}

// org creates an org and a token of scope for it, returning the secret.
func (tr *testRegistry) org(t *testing.T, name string, scope store.Scope) string {
	t.Helper()
	ctx := context.Background()
	if _, err := tr.store.Org(ctx, name); err != nil {
		if _, err := tr.store.CreateOrg(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	_, secret, err := tr.store.CreateToken(ctx, name, store.NewTokenOpts{Scope: scope})
	if err != nil {
		t.Fatal(err)
	}
	return secret
}
