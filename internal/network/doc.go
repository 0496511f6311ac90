// Package network owns ferry's host-side networking for machines: private
// networks (a Linux bridge each, ferry0 for the default one, with IPv4 and
// IPv6 ULA gateways), IPAM persisted in the daemon's bbolt database, a TAP
// per machine and network, isolation, anti-spoofing, egress NAT and
// published ports in ferry's own nftables tables, a DNS resolver per
// network (package resolver), the gateways other daemon services
// serve guests on, and networks spanning hosts (overlay.go: a VXLAN port
// per network with static FDB and neighbour entries, the lists given by
// the control plane).
//
// All of it can live inside a named network namespace (Config.NetNS, the
// daemon's --netns): netlink goes through a handle in that namespace, nft
// runs under `nsenter --net` (which, unlike `ip netns exec`, leaves the
// mount namespace alone), and TAPs are opened and sockets probed from a
// locked OS thread switched into it. Nothing here touches the namespace it
// was not given.
//
// Everything created for a machine is recorded (bbolt) before it is created
// and removed by Release; Reconcile removes what belongs to no live machine.
// It does not know about VMMs or guests: the caller hands the Attachment's
// TAP to the VMM and its addresses to the guest's run config.
package network
