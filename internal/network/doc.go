// Package network owns ferry's host-side networking for machines: one
// daemon-owned Linux bridge (ferry0) with the gateway address, IPAM from a
// configurable subnet persisted in the daemon's bbolt database, a TAP per
// machine enslaved to the bridge, NAT for egress and published ports in a
// ferry-owned nftables table, and the DNS servers handed to guests.
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
