package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/network"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// TestNetworkVerbs drives the network verbs through a daemon with no VMs:
// create's flags, ls's filters and -q, inspect, rm of several (and -f of
// one that is not there), prune, and their one-line refusals.
func TestNetworkVerbs(t *testing.T) {
	e := newFerryEnv(t, "--netns", prereq.NetNS(t))
	id := strings.TrimSpace(e.ok("network", "create", "--subnet", "10.70.0.0/24", "--gateway", "10.70.0.254", "--label", "team=a", "--internal", "front"))
	e.ok("network", "create", "--ipv6=false", "--label", "team=b", "back")
	e.ok("network", "create", "spare")
	var infos []network.Info
	if err := json.Unmarshal([]byte(e.ok("network", "inspect", "front", "back")), &infos); err != nil || len(infos) != 2 {
		t.Fatalf("inspect: %v %+v", err, infos)
	}
	if f := infos[0]; f.ID != id || f.Gateway.String() != "10.70.0.254" || !f.Internal || f.Labels["team"] != "a" || !f.IPv6() {
		t.Errorf("front %+v", f.Network)
	}
	if b := infos[1]; b.IPv6() || b.Internal {
		t.Errorf("back %+v", b.Network)
	}
	if out := e.ok("network", "ls", "-q", "--filter", "label=team=a"); out != id[:12]+"\n" {
		t.Errorf("ls -q --filter label=team=a: %q", out)
	}
	if out := e.ok("network", "ls"); !strings.Contains(out, "front") || !strings.Contains(out, "10.70.0.0/24") || !strings.Contains(out, "spare") {
		t.Errorf("ls:\n%s", out)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"network", "create", "--gateway", "10.71.0.1", "--subnet", "10.70.1.0/24", "g"}, "not a host address"},
		{[]string{"network", "create", "--subnet", "nonsense", "g"}, "want a CIDR"},
		{[]string{"network", "rm", "nope"}, "network nope not found"},
		{[]string{"network", "inspect", "nope"}, "network nope not found"},
		{[]string{"network", "create", "--driver", "overlay", "g"}, "ferry networks are bridges"},
	} {
		r := e.run(nil, tc.args...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.msg) || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Errorf("ferry %s: %s; want one line containing %q", strings.Join(tc.args, " "), r, tc.msg)
		}
	}
	if out := e.ok("network", "rm", "-f", "nope", "back"); out != "back\n" {
		t.Errorf("rm -f nope back: %q", out)
	}
	if out := e.ok("network", "prune", "--filter", "label=team=a"); !strings.Contains(out, "front") || strings.Contains(out, "spare") {
		t.Errorf("prune --filter label=team=a: %q", out)
	}
	if out := e.ok("network", "ls", "-q"); strings.Count(out, "\n") != 1 {
		t.Errorf("after rm and prune: %q (want spare only)", out)
	}
}
