package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/controlplane"
	"github.com/ferryvm/ferry/internal/registry/store/pgtest"
)

// TestOverlayEndToEnd boots real VMs on two hosts — two daemons joined to
// one control plane (in this process, on a throwaway Postgres), each with
// its network side in its own namespace, the namespaces linked by a veth
// pair (the underlay). The control plane's overlays become networks on both
// hosts; a busybox machine of app shop on host 2 reaches app shop's web
// server on host 1 by name (its own host's resolver) and by address over
// VXLAN, and a machine on another overlay network cannot, by either.
func TestOverlayEndToEnd(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := controlplane.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	const token = "overlay-e2e-token"
	srv, err := controlplane.NewServer(st, token, 3*time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-served })
	for _, n := range []struct{ name, app string }{{"shop", "shop"}, {"other", ""}} {
		if _, err := st.CreateNetwork(ctx, n.name, n.app); err != nil {
			t.Fatal(err)
		}
	}
	freePort := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	host := func(underlay string) *vmFerry {
		return vmEnv(t, "--join", "http://"+ln.Addr().String(), "--join-token", token,
			"--api-addr", freePort(), "--api-token", "api-token", "--underlay", underlay)
	}
	h1, h2 := host("10.99.7.1"), host("10.99.7.2")
	t.Parallel()
	if out, err := exec.Command("ip", "-n", h1.netns, "link", "add", "under0", "type", "veth", "peer", "name", "under0", "netns", h2.netns).CombinedOutput(); err != nil {
		t.Fatalf("underlay veth: %v: %s", err, out)
	}
	for i, h := range []*vmFerry{h1, h2} {
		for _, args := range [][]string{{"addr", "add", fmt.Sprintf("10.99.7.%d/24", i+1), "dev", "under0"}, {"link", "set", "under0", "up"}} {
			if out, err := exec.Command("ip", append([]string{"-n", h.netns}, args...)...).CombinedOutput(); err != nil {
				t.Fatalf("ip %v: %v: %s", args, err, out)
			}
		}
	}
	for _, h := range []*vmFerry{h1, h2} {
		h.eventually("the overlays as networks", time.Minute, func() bool {
			out := h.ok("network", "ls")
			return strings.Contains(out, "shop") && strings.Contains(out, "other")
		})
	}

	h1.ok("run", "-d", "--name", "web", "--app", "shop", "busybox:vm",
		"sh", "-c", "mkdir -p /www && echo served > /www/index.html && exec httpd -f -p 80 -h /www")
	h2.ok("run", "-d", "--name", "cli", "--app", "shop", "busybox:vm", "sleep", "1000")
	h2.ok("run", "-d", "--name", "stranger", "--network", "other", "busybox:vm", "sleep", "1000")
	t.Cleanup(func() {
		h1.run(nil, "rm", "-f", "--app", "shop", "web")
		h2.run(nil, "rm", "-f", "--app", "shop", "cli")
	})
	ip := func(e *vmFerry, name string) string {
		var ms []*types.Machine
		if err := json.Unmarshal([]byte(e.ok("inspect", "--app", "shop", name)), &ms); err != nil || len(ms) != 1 {
			t.Fatalf("inspect %s: %v", name, err)
		}
		return ms[0].IP()
	}
	webIP := ip(h1, "web")
	if cliIP := ip(h2, "cli"); webIP == "" || webIP == cliIP {
		t.Fatalf("web on host 1 has %q, cli on host 2 %q: want distinct addresses", webIP, cliIP)
	}
	appOf := func(name string) string {
		if name == "stranger" {
			return "default"
		}
		return "shop"
	}
	var last string
	resolves := func(e *vmFerry, from, name, want string) bool {
		r := e.run(nil, "exec", "--app", appOf(from), from, "nslookup", name)
		last = r.String()
		return r.code == 0 && strings.Contains(r.stdout, want)
	}
	h2.eventually("cli on host 2 resolves web on host 1", 3*time.Minute, func() bool { return resolves(h2, "cli", "web", webIP) })
	if !resolves(h2, "cli", "web.shop.internal", webIP) {
		t.Errorf("cli cannot resolve web.shop.internal to %s: %s", webIP, last)
	}
	for _, target := range []string{"web", webIP} {
		h2.eventually("cli reaches web at "+target, time.Minute, func() bool {
			return h2.run(nil, "exec", "--app", "shop", "cli", "timeout", "5", "wget", "-qO-", "http://"+target+"/").stdout == "served\n"
		})
	}
	if r := h2.run(nil, "exec", "stranger", "timeout", "5", "wget", "-qO-", "http://"+webIP+"/"); r.code == 0 {
		t.Errorf("a machine on another network reached web across hosts: %s", r)
	}
	if resolves(h2, "stranger", "web", webIP) {
		t.Errorf("another network's resolver knows web: %s", last)
	}
}
