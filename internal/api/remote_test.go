package api

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"testing"
)

// A request over a token listener (TCP) is remote; one over the local
// socket is not: bind mounts and other host privileges key on it.
func TestRemoteClient(t *testing.T) {
	s := NewServer(slog.New(slog.DiscardHandler))
	s.Handle("GET /v1/whoami", func(w http.ResponseWriter, r *http.Request) error {
		return WriteJSON(w, http.StatusOK, map[string]bool{"remote": RemoteClient(r.Context())})
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ul, err := net.Listen("unix", filepath.Join(t.TempDir(), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ctx, ul, "") }()
	go func() { _ = s.Serve(ctx, tl, "secret") }()
	for _, tc := range []struct {
		host, token string
		remote      bool
	}{{"unix://" + ul.Addr().String(), "", false}, {"tcp://" + tl.Addr().String(), "secret", true}} {
		c, err := NewClient(tc.host, tc.token)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]bool
		if err := c.Do(ctx, "GET", "/v1/whoami", nil, &got); err != nil {
			t.Fatal(err)
		}
		if got["remote"] != tc.remote {
			t.Errorf("%s: remote = %v, want %v", tc.host, got["remote"], tc.remote)
		}
	}
}
