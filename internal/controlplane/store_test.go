package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/registry/store/pgtest"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

var hostA = Host{ID: "host-a", Name: "a", Addr: "http://10.0.0.1:7070",
	Size: Capacity{CPUs: 4, MemoryMB: 8192, DiskMB: 100000}, Free: Capacity{CPUs: 4, MemoryMB: 8000, DiskMB: 90000}}

// TestLeaseGenerations: registering bumps the generation; a renewal names
// its generation, so the holder of an older one, or of an expired lease,
// is told it lost the lease; the hosts list says which leases are live.
func TestLeaseGenerations(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	l1, err := st.Register(ctx, hostA, time.Minute)
	if err != nil || l1.Generation != 1 {
		t.Fatalf("first registration: %+v %v", l1, err)
	}
	if _, err := st.Renew(ctx, hostA.ID, 1, Capacity{CPUs: 2, MemoryMB: 100, DiskMB: 5}, time.Minute); err != nil {
		t.Fatalf("renew: %v", err)
	}
	l2, err := st.Register(ctx, hostA, time.Minute)
	if err != nil || l2.Generation != 2 {
		t.Fatalf("second registration: %+v %v", l2, err)
	}
	if _, err := st.Renew(ctx, hostA.ID, 1, hostA.Free, time.Minute); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("renewal of a superseded generation: %v, want lease lost", err)
	}
	if _, err := st.Renew(ctx, "no-such-host", 1, hostA.Free, time.Minute); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("renewal of an unknown host: %v", err)
	}
	// An expired lease cannot be renewed, only registered again.
	if _, err := st.Renew(ctx, hostA.ID, 2, hostA.Free, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if _, err := st.Renew(ctx, hostA.ID, 2, hostA.Free, time.Minute); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("renewal of an expired lease: %v, want lease lost", err)
	}
	hs, err := st.Hosts(ctx)
	if err != nil || len(hs) != 1 || hs[0].Live || hs[0].Generation != 2 || hs[0].Addr != hostA.Addr || hs[0].Size != hostA.Size {
		t.Fatalf("hosts: %+v %v", hs, err)
	}
	if l3, err := st.Register(ctx, hostA, time.Minute); err != nil || l3.Generation != 3 {
		t.Fatalf("registration after expiry: %+v %v", l3, err)
	}
	if hs, _ := st.Hosts(ctx); !hs[0].Live {
		t.Fatalf("lease not live after registering again: %+v", hs[0])
	}
}

// TestReplicasShareOneDatabase: two control plane replicas on one
// database; a host registers through one and renews through the other,
// and a wrong token gets 401 with one line.
func TestReplicasShareOneDatabase(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	var urls []string
	for range 2 {
		st, err := Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		srv, err := NewServer(st, "cp-token", 3*time.Second, quiet())
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(srv.Handler())
		t.Cleanup(ts.Close)
		urls = append(urls, ts.URL)
	}
	post := func(url, token string, body any) (int, map[string]any) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", url, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if code, out := post(urls[0]+"/v1/hosts", "wrong", hostA); code != http.StatusUnauthorized || out["error"] == nil {
		t.Fatalf("wrong token: %d %v", code, out)
	}
	if code, out := post(urls[0]+"/v1/hosts", "cp-token", Host{ID: "Bad/ID"}); code != http.StatusBadRequest {
		t.Fatalf("bad host: %d %v", code, out)
	}
	code, out := post(urls[0]+"/v1/hosts", "cp-token", hostA)
	if code != http.StatusOK || out["generation"] != float64(1) || out["ttl"] != "3s" {
		t.Fatalf("register through replica 0: %d %v", code, out)
	}
	if code, out := post(urls[1]+"/v1/hosts/host-a/lease", "cp-token", RenewRequest{Generation: 1, Free: hostA.Free}); code != http.StatusOK {
		t.Fatalf("renew through replica 1: %d %v", code, out)
	}
	if code, out := post(urls[1]+"/v1/hosts/host-a/lease", "cp-token", RenewRequest{Generation: 7}); code != http.StatusConflict {
		t.Fatalf("renew with a wrong generation: %d %v", code, out)
	}
	// A volume's home through the API (machines: TestMachinesAPIAcrossHosts).
	if code, out := post(urls[0]+"/v1/apps/web/volumes", "cp-token", map[string]any{"name": "data", "size_mb": 10}); code != http.StatusCreated || out["host_id"] != "host-a" {
		t.Fatalf("create volume: %d %v", code, out)
	}
	// The agent registers, renews, and registers again when its lease is
	// taken over (here: another registration of its id).
	a := &Agent{URL: urls[1], Token: "cp-token", Host: hostA, Log: quiet()}
	actx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(actx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the agent's registration", func() bool { return a.Lease().Generation == 2 })
	if code, _ := post(urls[0]+"/v1/hosts", "cp-token", hostA); code != http.StatusOK { // generation 3
		t.Fatal(code)
	}
	waitFor(t, "the agent to register again after losing its lease", func() bool { return a.Lease().Generation == 4 })
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
