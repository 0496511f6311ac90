package cli

import (
	"context"
	"encoding/json"
	"regexp"
	"testing"

	"github.com/ferryvm/ferry/internal/controlplane"
	"github.com/ferryvm/ferry/internal/registry/store/pgtest"
)

// TestControlPlaneNetworksVerb: `ferry controlplane networks` lists the
// cross-host networks with their VNIs and subnets, as a table and as JSON.
func TestControlPlaneNetworksVerb(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	st, err := controlplane.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	code, out := runRegistryCLI(t, "controlplane", "--db", dsn, "networks")
	if code != 0 || out != "NAME  APP  VNI  SUBNET  SUBNET6\n" {
		t.Fatalf("controlplane networks with none: %d %q", code, out)
	}
	for _, n := range []struct{ name, app string }{{"shop", "shop"}, {"back", ""}} {
		if _, err := st.CreateNetwork(ctx, n.name, n.app); err != nil {
			t.Fatal(err)
		}
	}
	code, out = runRegistryCLI(t, "controlplane", "--db", dsn, "networks")
	if code != 0 || !regexp.MustCompile(`(?m)^back\s+2\s+10\.129\.0\.0/16\s+fd[0-9a-f:]+:2::/64$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^shop\s+shop\s+1\s+10\.128\.0\.0/16\s+fd[0-9a-f:]+:1::/64$`).MatchString(out) {
		t.Fatalf("controlplane networks: %d\n%s", code, out)
	}
	code, out = runRegistryCLI(t, "controlplane", "--db", dsn, "networks", "--format", "json")
	var nets []controlplane.OverlayNetwork
	if err := json.Unmarshal([]byte(out), &nets); code != 0 || err != nil || len(nets) != 2 || nets[0].Name != "back" || nets[1].VNI != 1 {
		t.Fatalf("controlplane networks --format json: %d %v %s", code, err, out)
	}
}
