package cli

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/ferryvm/ferry/internal/api/types"
)

// TestPublishedPorts: ps's PORTS and NETWORKS columns and ferry port's
// bindings, as Docker shows them (a port on every address is 0.0.0.0 and,
// on a dual-stack network, [::] too).
func TestPublishedPorts(t *testing.T) {
	m := &types.Machine{Network: &types.Network{
		Endpoints: []types.Endpoint{{Network: "shop", IPv4: netip.MustParsePrefix("10.50.0.2/24"), IPv6: netip.MustParsePrefix("fd00::2/64")},
			{Network: "vault", IPv4: netip.MustParsePrefix("10.51.0.2/24")}},
		Ports: []types.PortMapping{
			{Protocol: "tcp", HostPort: 8080, GuestPort: 80},
			{Protocol: "udp", HostIP: "127.0.0.1", HostPort: 5353, GuestPort: 53},
			{Protocol: "tcp", HostIP: "::1", HostPort: 8443, GuestPort: 443},
		}}}
	want := "0.0.0.0:8080->80/tcp, [::]:8080->80/tcp, 127.0.0.1:5353->53/udp, [::1]:8443->443/tcp"
	if got := portsColumn(m); got != want {
		t.Errorf("ports column\n%s\nwant\n%s", got, want)
	}
	if got := networksColumn(m); got != "shop,vault" {
		t.Errorf("networks column %q", got)
	}
	var hosts []string
	for _, b := range publishedPorts(m) {
		hosts = append(hosts, b.host)
	}
	if !slices.Equal(hosts, []string{"0.0.0.0:8080", "[::]:8080", "127.0.0.1:5353", "[::1]:8443"}) {
		t.Errorf("bindings %v", hosts)
	}
	stopped := &types.Machine{Config: types.Config{Networks: []types.EndpointRequest{{Network: "shop"}}}}
	if got := networksColumn(stopped); got != "shop" || portsColumn(stopped) != "" {
		t.Errorf("stopped machine: networks %q ports %q", got, portsColumn(stopped))
	}
}
