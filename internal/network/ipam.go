package network

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"

	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// IPAM: each network's IPv4 addresses are allocated in the database (an
// address is never handed out twice while allocated; the search is
// round-robin from the last allocation so a released address is not reused
// at once and stale ARP/conntrack entries age out). A machine's IPv6
// address is its IPv4 address's host part in the network's /64
// (10.214.3.7/24 → fdXX:…:3::7), so it needs no second index.

func nextKey(netID string) []byte { return []byte("next/" + netID) }

// firstHost and lastHost bound the machine addresses of a subnet: not the
// network address, the broadcast address or gw.
func firstHost(p netip.Prefix) netip.Addr { return p.Masked().Addr().Next() }

func lastHost(p netip.Prefix) netip.Addr { return lastAddr(p).Prev() }

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(b[:]) | (uint32(1)<<(32-p.Bits()) - 1)
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// hostCount is how many machine addresses a subnet holds (gateway excluded).
func hostCount(p netip.Prefix) int { return 1<<(32-p.Bits()) - 3 }

// allocate returns a free machine address of n, starting after the last one
// handed out.
func allocate(tx *bbolt.Tx, n *Network) (netip.Addr, error) {
	ips, meta := bkt(tx, bucketIPs), bkt(tx, bucketMeta)
	first, last := firstHost(n.Subnet), lastHost(n.Subnet)
	pool := n.Subnet
	if r := n.IPRange; r.IsValid() {
		pool = r
		if a := r.Masked().Addr().Next(); first.Less(a) {
			first = a
		}
		if a := lastAddr(r); a.Less(last) {
			last = a
		}
	}
	start := first
	if b := meta.Get(nextKey(n.ID)); b != nil {
		if a, err := netip.ParseAddr(string(b)); err == nil && n.Subnet.Contains(a) && !a.Less(first) && !last.Less(a) {
			start = a
		}
	}
	wrap := func(a netip.Addr) netip.Addr {
		if last.Less(a) {
			return first
		}
		return a
	}
	for a := start; ; {
		if a != n.Gateway && ips.Get(ipKey(n.ID, a)) == nil {
			return a, meta.Put(nextKey(n.ID), []byte(wrap(a.Next()).String()))
		}
		if a = wrap(a.Next()); a == start {
			if pool != n.Subnet {
				return netip.Addr{}, fmt.Errorf("network %s: this host's ip range %s of subnet %s exhausted: %w",
					n.Name, pool, n.Subnet, errdefs.ErrUnavailable)
			}
			return netip.Addr{}, fmt.Errorf("network %s: subnet %s exhausted: all %d machine addresses are allocated: %w",
				n.Name, n.Subnet, hostCount(n.Subnet), errdefs.ErrUnavailable)
		}
	}
}

// claim takes a requested address (--ip) on n for machineID.
func claim(tx *bbolt.Tx, n *Network, a netip.Addr, machineID string) error {
	if !n.Subnet.Contains(a) || a.Less(firstHost(n.Subnet)) || lastHost(n.Subnet).Less(a) || a == n.Gateway {
		return fmt.Errorf("network %s: address %s is not a machine address of subnet %s (gateway %s): %w",
			n.Name, a, n.Subnet, n.Gateway, errdefs.ErrInvalidArgument)
	}
	if owner := bkt(tx, bucketIPs).Get(ipKey(n.ID, a)); owner != nil && string(owner) != machineID {
		return fmt.Errorf("network %s: address %s is in use by machine %s: %w", n.Name, a, owner, errdefs.ErrConflict)
	}
	return nil
}

// ipv6For maps an IPv4 address of n to its IPv6 twin.
func ipv6For(n *Network, a netip.Addr) netip.Addr {
	if !n.IPv6() {
		return netip.Addr{}
	}
	s, v := n.Subnet.Masked().Addr().As4(), a.As4()
	host := binary.BigEndian.Uint32(v[:]) - binary.BigEndian.Uint32(s[:])
	b := n.Subnet6.Masked().Addr().As16()
	binary.BigEndian.PutUint32(b[12:], binary.BigEndian.Uint32(b[12:])|host)
	return netip.AddrFrom16(b)
}

// ula returns the daemon's ULA /48, choosing a random one (RFC 4193) the
// first time.
func ula(tx *bbolt.Tx) (netip.Prefix, error) {
	meta := bkt(tx, bucketMeta)
	if b := meta.Get(keyULA); b != nil {
		return netip.ParsePrefix(string(b))
	}
	var a [16]byte
	a[0] = 0xfd
	if _, err := rand.Read(a[1:6]); err != nil {
		return netip.Prefix{}, err
	}
	p := netip.PrefixFrom(netip.AddrFrom16(a), 48)
	return p, meta.Put(keyULA, []byte(p.String()))
}

// pick6 returns a free /64 of the ULA /48 for a new network.
func pick6(tx *bbolt.Tx, nets []*Network) (netip.Prefix, error) {
	base, err := ula(tx)
	if err != nil {
		return netip.Prefix{}, err
	}
	for id := 1; id < 1<<16; id++ {
		b := base.Addr().As16()
		binary.BigEndian.PutUint16(b[6:], uint16(id))
		p := netip.PrefixFrom(netip.AddrFrom16(b), 64)
		if !overlapsAny(p, nets) {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free IPv6 /64 left in %s: %w", base, errdefs.ErrUnavailable)
}

// pick4 returns the first /size of pool that overlaps no network and no
// route in avoid.
func pick4(pool netip.Prefix, size int, nets []*Network, avoid []netip.Prefix) (netip.Prefix, error) {
	step := uint32(1) << (32 - size)
	base := pool.Masked().Addr().As4()
	start := binary.BigEndian.Uint32(base[:])
	for i := uint32(0); i < uint32(1)<<(size-pool.Bits()); i++ {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], start+i*step)
		p := netip.PrefixFrom(netip.AddrFrom4(b), size)
		if overlapsAny(p, nets) || overlapsPrefixes(p, avoid) {
			continue
		}
		return p, nil
	}
	return netip.Prefix{}, fmt.Errorf("address pool %s has no free /%d left (remove unused networks: ferry network prune): %w",
		pool, size, errdefs.ErrUnavailable)
}

func overlapsAny(p netip.Prefix, nets []*Network) bool {
	for _, n := range nets {
		if n.Subnet.Overlaps(p) || (n.Subnet6.IsValid() && n.Subnet6.Overlaps(p)) {
			return true
		}
	}
	return false
}

func overlapsPrefixes(p netip.Prefix, avoid []netip.Prefix) bool {
	for _, a := range avoid {
		if a.Overlaps(p) {
			return true
		}
	}
	return false
}
