package machine

import (
	"net/netip"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/network"
)

// A Manager keeps each machine in memory as its API value (types.Machine)
// and in bbolt as a private, versioned record (store.go). The conversions
// from the packages' own types to the API's are below, one function each;
// convert_test.go fails when a field is added on one side and not carried.

const maxEvents = 20

// cloneMachine returns a copy that shares nothing mutable with m.
func cloneMachine(m *types.Machine) *types.Machine {
	out := *m
	out.Config = cloneConfig(m.Config)
	out.ImageConfig = cloneImageConfig(m.ImageConfig)
	if m.Network != nil {
		n := *m.Network
		n.Endpoints, n.DNS, n.Search, n.Ports = cloneSlice(n.Endpoints), cloneSlice(n.DNS), cloneSlice(n.Search), cloneSlice(n.Ports)
		for i := range n.Endpoints {
			n.Endpoints[i].Aliases = cloneSlice(n.Endpoints[i].Aliases)
		}
		out.Network = &n
	}
	if m.LastExit != nil {
		e := *m.LastExit
		out.LastExit = &e
	}
	out.Events = cloneSlice(m.Events)
	return &out
}

// failed reports whether the exit counts as a failure for on-failure.
func failed(e *types.Exit) bool {
	return e.ExitCode != 0 || e.Signal != 0 || e.OOMKilled || e.Unknown
}

// networkView is the API's view of a machine's network attachment.
func networkView(a *network.Attachment) *types.Network {
	if a == nil {
		return nil
	}
	n := &types.Network{DNS: cloneSlice(a.DNS), Search: cloneSlice(a.Search), NetNS: a.NetNS}
	for _, e := range a.Endpoints {
		n.Endpoints = append(n.Endpoints, endpointView(e))
	}
	for _, p := range a.Ports {
		n.Ports = append(n.Ports, portView(p))
	}
	return n
}

// endpointView is the API's view of one NIC.
func endpointView(e network.Endpoint) types.Endpoint {
	return types.Endpoint{NetworkID: e.NetworkID, Network: e.Network, Name: e.Name, App: e.App, Aliases: cloneSlice(e.Aliases),
		Tap: e.Tap, MAC: e.MAC, IPv4: e.IPv4, Gateway: e.Gateway, IPv6: e.IPv6, Gateway6: e.Gateway6, MTU: e.MTU, Requested: e.Requested}
}

// portView is the API's view of a published port.
func portView(p network.Port) types.PortMapping {
	m := types.PortMapping{Protocol: p.Protocol, HostPort: int(p.HostPort), GuestPort: int(p.GuestPort)}
	if p.HostIP.IsValid() {
		m.HostIP = p.HostIP.String()
	}
	return m
}

// imageConfigView is the API's view of an image's runtime config, and
// guestImage the guest's.
func imageConfigView(g guest.Image) types.ImageConfig {
	return types.ImageConfig{Entrypoint: cloneSlice(g.Entrypoint), Cmd: cloneSlice(g.Cmd), Env: cloneSlice(g.Env), User: g.User, WorkingDir: g.WorkingDir}
}

func guestImage(c types.ImageConfig) guest.Image {
	return guest.Image{Entrypoint: cloneSlice(c.Entrypoint), Cmd: cloneSlice(c.Cmd), Env: cloneSlice(c.Env), User: c.User, WorkingDir: c.WorkingDir}
}

// hostIP reads a service port's host_ip: "" is every address.
func hostIP(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	return netip.ParseAddr(s)
}
