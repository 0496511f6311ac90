package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/network"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// TestNetworksEndToEnd boots real VMs on two networks: names resolve
// (name, alias, NAME.APP.internal) and connect within a network, nothing
// crosses between them, DNS follows rename and stop, --add-host lands in
// /etc/hosts, and bad input is one line that leaves nothing behind.
func TestNetworksEndToEnd(t *testing.T) {
	prereq.Tool(t, "curl")
	e := vmEnv(t)
	t.Parallel()
	e.ok("network", "create", "--subnet", "10.60.0.0/24", "--label", "team=a", "front")
	e.ok("network", "create", "back")
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"network", "create", "--subnet", "10.60.0.128/25", "clash"}, "overlaps network front"},
		{[]string{"network", "create", "no.dots"}, "not a DNS label"},
		{[]string{"network", "create", "front"}, "already exists"},
		{[]string{"run", "-d", "--network", "nope", "busybox:vm", "true"}, "network nope not found"},
		{[]string{"run", "-d", "--network", "front", "--ip", "10.61.0.5", "busybox:vm", "true"}, "not a machine address"},
		{[]string{"run", "-d", "--network", "front", "--network-alias", "a.b", "busybox:vm", "true"}, "not a DNS label"},
	} {
		r := e.run(nil, tc.args...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.msg) || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Errorf("ferry %s: %s; want one line containing %q", strings.Join(tc.args, " "), r, tc.msg)
		}
	}
	if out := e.ok("ps", "-a", "-q"); out != "" {
		t.Fatalf("refused runs left machines: %q", out)
	}
	if out := e.ok("run", "--rm", "--network", "none", "busybox:vm", "ls", "/sys/class/net"); out != "lo\n" {
		t.Errorf("--network none: interfaces %q, want lo alone", out)
	}

	e.ok("run", "-d", "--name", "web", "--network", "front", "--network-alias", "www", "-p", "127.0.0.1:18086:80", "busybox:vm",
		"sh", "-c", "mkdir -p /www && echo served > /www/index.html && exec httpd -f -p 80 -h /www")
	e.ok("run", "-d", "--name", "cli", "--network", "front", "--add-host", "gw.example:10.60.0.1", "busybox:vm", "sleep", "1000")
	e.ok("run", "-d", "--name", "other", "--network", "back", "busybox:vm", "sleep", "1000")
	webIP := e.inspect("web").IP()
	var lastLookup string
	resolves := func(from, name, want string) bool {
		r := e.run(nil, "exec", from, "nslookup", name)
		lastLookup = r.String()
		return r.code == 0 && strings.Contains(r.stdout, want)
	}
	e.eventually("cli resolves web", 3*time.Minute, func() bool { return resolves("cli", "web", webIP) })
	// (Debian's busybox 1.35 wget -T crashes: timeout(1) bounds it instead.)
	for _, name := range []string{"www", "web.default.internal", "www.default.internal"} {
		if !resolves("cli", name, webIP) {
			t.Errorf("cli cannot resolve %s to %s: %s", name, webIP, lastLookup)
		}
	}
	e.eventually("cli reaches web", time.Minute, func() bool {
		return e.run(nil, "exec", "cli", "timeout", "5", "wget", "-qO-", "http://"+webIP+"/").stdout == "served\n"
	})
	if r := e.run(nil, "exec", "other", "timeout", "5", "wget", "-qO-", "http://"+webIP+"/"); r.code == 0 {
		t.Errorf("a machine on another network reached web: %s", r)
	}
	if resolves("other", "web", webIP) {
		t.Error("another network's resolver knows web")
	}
	if hosts := e.ok("exec", "cli", "cat", "/etc/hosts"); !strings.Contains(hosts, "10.60.0.1") || !strings.Contains(hosts, "gw.example") {
		t.Errorf("--add-host missing from /etc/hosts:\n%s", hosts)
	}
	if out := e.ok("port", "web"); out != "80/tcp -> 127.0.0.1:18086\n" {
		t.Errorf("ferry port web: %q", out)
	}
	if out := e.ok("port", "web", "80"); out != "127.0.0.1:18086\n" {
		t.Errorf("ferry port web 80: %q", out)
	}
	e.eventually("web on 127.0.0.1:18086", time.Minute, func() bool {
		out, err := e.inNetns("curl", "-sS", "-m", "2", "http://127.0.0.1:18086/")
		return err == nil && out == "served\n"
	})
	if ps := e.ok("ps"); !strings.Contains(ps, "front") || !strings.Contains(ps, "back") {
		t.Errorf("ps does not show networks:\n%s", ps)
	}
	var infos []network.Info
	if err := json.Unmarshal([]byte(e.ok("network", "inspect", "front")), &infos); err != nil || len(infos) != 1 || len(infos[0].Endpoints) != 2 {
		t.Fatalf("network inspect front: %v %+v", err, infos)
	}
	if r := e.run(nil, "network", "rm", "front"); r.code == 0 || !strings.Contains(r.stderr, "in use by machines cli, web") {
		t.Errorf("network rm of a network in use: %s", r)
	}
	if r := e.run(nil, "network", "connect", "back", "cli"); r.code == 0 || !strings.Contains(r.stderr, "fixed at boot") {
		t.Errorf("connect of a running machine: %s", r)
	}

	e.ok("rename", "web", "api")
	if !resolves("cli", "api", webIP) {
		t.Errorf("DNS does not follow the rename: %s", lastLookup)
	}
	if resolves("cli", "web", webIP) {
		t.Errorf("the old name still resolves after the rename: %s", lastLookup)
	}
	e.ok("stop", "-t", "2s", "api")
	if resolves("cli", "api", webIP) {
		t.Error("a stopped machine still resolves")
	}
	e.ok("network", "connect", "--alias", "edge", "back", "api") // stopped: fine
	e.ok("start", "api")
	m := e.inspect("api")
	if m.Network == nil || len(m.Network.Endpoints) != 2 || m.Network.Endpoints[1].Network != "back" {
		t.Fatalf("after connect and start: %+v", m.Network)
	}
	otherIP := m.Network.Endpoints[1].IPv4.Addr().String()
	e.eventually("other resolves api's alias on back", time.Minute, func() bool { return resolves("other", "edge", otherIP) })
	// api is on front and back; its resolv.conf names front's resolver,
	// which answers it for back's machines too.
	farIP := e.inspect("other").IP()
	e.eventually("api resolves other (on back) through front's resolver", time.Minute, func() bool { return resolves("api", "other", farIP) })
	if resolves("cli", "other", farIP) {
		t.Errorf("cli (on front only) resolves other on back: %s", lastLookup)
	}

	// A daemon restart (SIGKILL: no chance to tidy) keeps the networks,
	// addresses, rules and resolvers of the machines that outlived it.
	apiIP := m.Network.Endpoints[0].IPv4.Addr().String()
	e.killDaemon()
	e.startDaemon()
	if after := e.inspect("api"); after.Network == nil || after.Network.Endpoints[0].IPv4.Addr().String() != apiIP {
		t.Errorf("api's address after the daemon restart: %+v, want %s", after.Network, apiIP)
	}
	e.eventually("cli resolves api after the daemon restart", time.Minute, func() bool { return resolves("cli", "api", apiIP) })
	e.eventually("cli reaches api after the daemon restart", time.Minute, func() bool {
		return e.run(nil, "exec", "cli", "timeout", "5", "wget", "-qO-", "http://"+apiIP+"/").stdout == "served\n"
	})
	if r := e.run(nil, "exec", "other", "timeout", "5", "wget", "-qO-", "http://"+apiIP+"/"); r.code == 0 {
		t.Errorf("after the daemon restart a machine on another network reached api's front address: %s", r)
	}

	for _, n := range []string{"api", "cli", "other"} {
		e.ok("rm", "-f", n)
	}
	e.ok("network", "rm", "front", "back")
	if out, _ := e.inNetns("ip", "-o", "link", "show", "type", "bridge"); strings.Contains(out, "fb-") {
		t.Errorf("bridges left after network rm:\n%s", out)
	}
	if out, _ := e.inNetns("nft", "list", "ruleset"); strings.Contains(out, "10.60.0") {
		t.Errorf("rules left after network rm:\n%s", out)
	}
	assertNoLeaks(t, e)
}
