package cli

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/controlplane"
	"github.com/ferryvm/ferry/internal/registry/store/pgtest"
)

// TestControlPlaneListVerbs: `ferry controlplane hosts` and `machines`
// show what the database holds: hosts with their lease, machines with the
// host they are placed on; a --db that is not Postgres gets one line.
func TestControlPlaneListVerbs(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	st, err := controlplane.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	c := controlplane.Capacity{CPUs: 4, MemoryMB: 4096, DiskMB: 1000}
	if _, err := st.Register(ctx, controlplane.Host{ID: "h-one", Name: "one", Addr: "http://10.0.0.1:7070", Size: c, Free: c}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PlaceMachine(ctx, controlplane.MachineSpec{App: "web", Name: "w1", CPUs: 1, MemoryMB: 256}); err != nil {
		t.Fatal(err)
	}
	code, out := runRegistryCLI(t, "controlplane", "--db", dsn, "hosts")
	if code != 0 || !strings.Contains(out, "h-one") || !strings.Contains(out, "http://10.0.0.1:7070") || !strings.Contains(out, "live") || !strings.Contains(out, "3840 MiB") {
		t.Fatalf("controlplane hosts: %d\n%s", code, out)
	}
	code, out = runRegistryCLI(t, "controlplane", "--db", dsn, "machines")
	if code != 0 || !strings.Contains(out, "HOST") || !regexp.MustCompile(`(?m)^web\s+w1\s+[0-9a-f]{14}\s+one\s+live\s+1\s+256 MiB\s+-\s+1\s*$`).MatchString(out) {
		t.Fatalf("controlplane machines: %d\n%s", code, out)
	}
	if code, out := runRegistryCLI(t, "controlplane", "--db", "/tmp/x.db", "hosts"); code == 0 || !strings.Contains(out, "must be a postgres:// URL") {
		t.Fatalf("controlplane with a SQLite path: %d %s", code, out)
	}
}
