package network

import (
	"net/netip"
	"os"
	"slices"
	"time"
)

// Network is one private network as stored and as inspect shows it: a
// bridge with the gateway addresses, an IPv4 subnet and (unless created with
// IPv6 off) an IPv6 ULA /64, an embedded DNS resolver on the gateways, and
// the kernel rules that keep it apart from every other network.
type Network struct {
	ID       string       `json:"id"`   // 64 hex digits
	Name     string       `json:"name"` // a DNS label
	Bridge   string       `json:"bridge"`
	Subnet   netip.Prefix `json:"subnet"`
	Gateway  netip.Addr   `json:"gateway"`
	Subnet6  netip.Prefix `json:"subnet6,omitzero"`
	Gateway6 netip.Addr   `json:"gateway6,omitzero"`
	Internal bool         `json:"internal,omitempty"` // no egress, no published ports
	// IPRange, when set, is the part of Subnet this host allocates machine
	// addresses from (Docker's --ip-range): a network spanning hosts gives
	// each host its own range (overlay.go).
	IPRange netip.Prefix `json:"ip_range,omitzero"`
	// MTU, when set, is the bridge's (and so its guests') MTU, kept across
	// restarts: a network spanning hosts carries VXLAN's overhead.
	MTU    int               `json:"mtu,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	// App is set on an app's default network, created on the app's first
	// machine.
	App     string    `json:"app,omitempty"`
	Created time.Time `json:"created"`
}

// IPv6 reports whether the network is dual stack.
func (n *Network) IPv6() bool { return n.Subnet6.IsValid() }

func (n *Network) clone() *Network {
	c := *n
	if n.Labels != nil {
		c.Labels = make(map[string]string, len(n.Labels))
		for k, v := range n.Labels {
			c.Labels[k] = v
		}
	}
	return &c
}

// CreateRequest is `network create` (Docker's flags).
type CreateRequest struct {
	Name string `json:"name"`
	// Subnets: at most one IPv4 and one IPv6 prefix; none picks a free
	// IPv4 /24 from the pool and a /64 of the daemon's ULA prefix.
	Subnets []netip.Prefix `json:"subnets,omitempty"`
	// Gateways: at most one per family, inside its subnet; default the
	// subnet's first address.
	Gateways []netip.Addr `json:"gateways,omitempty"`
	Internal bool         `json:"internal,omitempty"`
	// IPRange: allocate IPv4 addresses from this part of the subnet only.
	IPRange netip.Prefix `json:"ip_range,omitzero"`
	// MTU of the bridge and its guests; 0: the kernel's (the ports' least).
	MTU int `json:"mtu,omitempty"`
	// IPv6 off (false) makes an IPv4-only network; nil is on.
	IPv6   *bool             `json:"ipv6,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	// App marks an app's default network (set by the service itself).
	App string `json:"app,omitempty"`
}

// EndpointRequest asks for a machine's place on one network.
type EndpointRequest struct {
	Network string     `json:"network"` // name or ID
	Aliases []string   `json:"aliases,omitempty"`
	IPv4    netip.Addr `json:"ipv4,omitzero"` // --ip; zero: allocate
	IPv6    netip.Addr `json:"ipv6,omitzero"` // --ip6; zero: derived from the IPv4 address
}

// AttachRequest gives a machine its NICs: one endpoint per network, the
// first one primary (default route, published ports). No Networks: the
// app's default network.
type AttachRequest struct {
	MachineID string            `json:"machine_id"`
	Name      string            `json:"name"` // DNS name on every network
	App       string            `json:"app"`
	Networks  []EndpointRequest `json:"networks,omitempty"`
	Ports     []Port            `json:"ports,omitempty"`
}

// Endpoint is a machine's NIC on one network: what the VMM needs (Tap,
// File, MAC) and what the guest needs (addresses, gateways, MTU).
type Endpoint struct {
	NetworkID string       `json:"network_id"`
	Network   string       `json:"network"` // name
	MachineID string       `json:"machine_id,omitempty"`
	Name      string       `json:"name"` // the machine's DNS name
	App       string       `json:"app,omitempty"`
	Aliases   []string     `json:"aliases,omitempty"`
	Tap       string       `json:"tap"`
	MAC       string       `json:"mac"`
	IPv4      netip.Prefix `json:"ipv4"` // address with the subnet's length
	Gateway   netip.Addr   `json:"gateway"`
	IPv6      netip.Prefix `json:"ipv6,omitzero"`
	Gateway6  netip.Addr   `json:"gateway6,omitzero"`
	MTU       int          `json:"mtu,omitempty"` // the guest sets it on its interface; 0: the default
	// Requested is what was asked for (--ip), kept so a restart honours it.
	Requested netip.Addr `json:"requested,omitzero"`

	// File is the open TAP after Attach: hand it to QEMU (vmm.NIC.File),
	// then Close it once the VMM has started. Firecracker opens Tap by name
	// instead; close File before starting it.
	File *os.File `json:"-"`
}

// Addresses are the endpoint's addresses with their subnets' lengths.
func (e *Endpoint) Addresses() []netip.Prefix {
	out := []netip.Prefix{e.IPv4}
	if e.IPv6.IsValid() {
		out = append(out, e.IPv6)
	}
	return out
}

// Attachment is a machine's whole network, the one type of the machine
// path: internal/machine records it and builds the guest's interfaces and
// the VMM's NICs from it. Endpoints are the NICs in guest order (eth0
// first: default routes and published ports); DNS and Search are the
// guest's resolv.conf (its primary network's resolver, the daemon's --dns
// instead when set).
type Attachment struct {
	MachineID string     `json:"machine_id,omitempty"`
	Endpoints []Endpoint `json:"endpoints"`
	Ports     []Port     `json:"ports,omitempty"` // host ports resolved
	DNS       []string   `json:"dns,omitempty"`
	Search    []string   `json:"search,omitempty"`
	NetNS     string     `json:"netns,omitempty"` // where the TAPs live ("" = the daemon's namespace)
}

// Primary is the first endpoint, or nil.
func (a *Attachment) Primary() *Endpoint {
	if a == nil || len(a.Endpoints) == 0 {
		return nil
	}
	return &a.Endpoints[0]
}

// IP is the machine's primary IPv4 address, or the zero Addr.
func (a *Attachment) IP() netip.Addr {
	if p := a.Primary(); p != nil {
		return p.IPv4.Addr()
	}
	return netip.Addr{}
}

// Clone returns a copy sharing nothing with a, without the open TAPs.
func (a *Attachment) Clone() *Attachment {
	if a == nil {
		return nil
	}
	out := *a
	out.Endpoints = cloneEndpoints(a.Endpoints)
	out.Ports = slices.Clone(a.Ports)
	out.DNS = slices.Clone(a.DNS)
	out.Search = slices.Clone(a.Search)
	return &out
}

// Close closes every endpoint's open TAP (the VMM holds its own copies).
func (a *Attachment) Close() {
	if a == nil {
		return
	}
	for i := range a.Endpoints {
		if f := a.Endpoints[i].File; f != nil {
			_ = f.Close()
			a.Endpoints[i].File = nil
		}
	}
}

func cloneEndpoints(in []Endpoint) []Endpoint {
	out := slices.Clone(in)
	for i := range out {
		out[i].Aliases = slices.Clone(out[i].Aliases)
		out[i].File = nil
	}
	return out
}
