package machine

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/network"
)

// TestMachineNetworks: the config's networks, name and app reach Attach;
// a rename reaches the network (DNS); connect and disconnect edit a
// stopped machine's networks and refuse a running one; NetworkUsers sees
// configured machines in any state.
func TestMachineNetworks(t *testing.T) {
	w := newWorld()
	w.hold = true
	m := newManager(t, w, t.TempDir())
	cfg := types.Config{Image: "busybox", Networks: []types.EndpointRequest{{Network: "front", Aliases: []string{"www"}}},
		ExtraHosts: []string{"gw.example:10.0.0.1"}}
	mc, err := m.Create(ctx, "shop", types.CreateRequest{Name: "web", Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	got := w.attached
	w.mu.Unlock()
	if got.MachineID != mc.ID || got.Name != "web" || got.App != "shop" || len(got.Networks) != 1 || got.Networks[0].Aliases[0] != "www" {
		t.Errorf("attach request %+v", got)
	}
	if _, err := m.Rename(ctx, "shop", "web", "api"); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	renamed := slices.Clone(w.renamed)
	w.mu.Unlock()
	if !slices.Equal(renamed, []string{mc.ID + "=api"}) {
		t.Errorf("network renames %v", renamed)
	}
	if _, err := m.Connect(ctx, "shop", "api", types.EndpointRequest{Network: "back"}); !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "fixed at boot") {
		t.Errorf("connect a running machine: %v", err)
	}
	if _, err := m.Stop(ctx, "shop", "api", StopOptions{Timeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	c, err := m.Connect(ctx, "shop", "api", types.EndpointRequest{Network: "back", Aliases: []string{"edge"}})
	if err != nil {
		t.Fatal(err)
	}
	if n := c.Config.Networks; len(n) != 2 || n[1].Network != "back" || n[1].Aliases[0] != "edge" || c.State != types.StateStopped {
		t.Errorf("after connect: %+v state %s", n, c.State)
	}
	if _, err := m.Connect(ctx, "shop", "api", types.EndpointRequest{Network: "back"}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("connect twice: %v", err)
	}
	if users, _ := m.NetworkUsers(ctx, "id", "back"); !slices.Equal(users, []string{"api"}) {
		t.Errorf("users of back: %v", users)
	}
	d, err := m.Disconnect(ctx, "shop", "api", "front")
	if err != nil || len(d.Config.Networks) != 1 || d.Config.Networks[0].Network != "back" {
		t.Fatalf("disconnect: %+v, %v", d, err)
	}
	if _, err := m.Disconnect(ctx, "shop", "api", "back"); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("disconnect of the last network: %v", err)
	}
	if _, err := m.Disconnect(ctx, "shop", "api", "nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("disconnect of a network it is not on: %v", err)
	}
	// A machine with no networks is on its app's.
	if _, err := m.Create(ctx, "shop", types.CreateRequest{Name: "db", SkipLaunch: true, Config: types.Config{Image: "busybox"}}); err != nil {
		t.Fatal(err)
	}
	if users, _ := m.NetworkUsers(ctx, "id", "shop"); !slices.Equal(users, []string{"db"}) {
		t.Errorf("users of the app network: %v", users)
	}
	for _, bad := range []types.Config{
		{Image: "busybox", Networks: []types.EndpointRequest{{Network: "a.b"}}},
		{Image: "busybox", ExtraHosts: []string{"nohost"}},
		{Image: "busybox", ExtraHosts: []string{"h:999.1.1.1"}},
	} {
		if _, err := m.Create(ctx, "shop", types.CreateRequest{Config: bad}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("create %+v: %v", bad, err)
		}
	}
}

func TestRunConfigNetworks(t *testing.T) {
	mc := &types.Machine{ID: "0123456789abcdef", Name: "web", Config: types.Config{Image: "x", ExtraHosts: []string{"gw.example:10.0.0.1", "v6.example:[fd00::1]"}}}
	att := &network.Attachment{DNS: []string{"10.50.0.1", "fd00:50::1"}, Search: []string{"shop.internal"}, Endpoints: []network.Endpoint{
		{MAC: "02:fe:00:00:00:01", IPv4: netip.MustParsePrefix("10.50.0.2/24"), Gateway: netip.MustParseAddr("10.50.0.1"),
			IPv6: netip.MustParsePrefix("fd00:50::2/64"), Gateway6: netip.MustParseAddr("fd00:50::1"), MTU: 1500},
		{MAC: "02:fe:00:00:00:02", IPv4: netip.MustParsePrefix("10.51.0.2/24"), Gateway: netip.MustParseAddr("10.51.0.1")},
	}}
	mc.Network = networkView(att)
	rc := runConfig(mc, guest.Image{}, guest.Root{}, att, nil)
	if len(rc.Network) != 2 {
		t.Fatalf("interfaces %+v", rc.Network)
	}
	e0, e1 := rc.Network[0], rc.Network[1]
	if e0.Name != "eth0" || e0.Gateway4 != "10.50.0.1" || e0.Gateway6 != "fd00:50::1" || !slices.Equal(e0.Addresses, []string{"10.50.0.2/24", "fd00:50::2/64"}) || e0.MTU != 1500 {
		t.Errorf("eth0 %+v", e0)
	}
	if e1.Name != "eth1" || e1.Gateway4 != "" || e1.MAC != "02:fe:00:00:00:02" {
		t.Errorf("eth1 %+v (only the primary has default routes)", e1)
	}
	if rc.DNS == nil || !slices.Equal(rc.DNS.Nameservers, att.DNS) || !slices.Equal(rc.DNS.Search, []string{"shop.internal"}) {
		t.Errorf("dns %+v", rc.DNS)
	}
	var hosts []string
	for _, h := range rc.Hosts {
		hosts = append(hosts, h.IP+" "+strings.Join(h.Names, " "))
	}
	for _, want := range []string{"10.50.0.2 web", "10.0.0.1 gw.example", "fd00::1 v6.example"} {
		if !slices.Contains(hosts, want) {
			t.Errorf("hosts %v lack %q", hosts, want)
		}
	}
}
