package network

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// Hand-built frames a hostile guest sends on its eth0 with an AF_PACKET
// socket: whatever source MAC and address it likes.

func mac(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func ether(dst, src net.HardwareAddr, typ uint16, payload []byte) []byte {
	f := append(append(append([]byte{}, dst...), src...), byte(typ>>8), byte(typ))
	return append(f, payload...)
}

func csum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

func udp(sport, dport uint16, data []byte) []byte {
	u := make([]byte, 8, 8+len(data))
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(data)))
	return append(u, data...)
}

// udp4Frame is an IPv4/UDP datagram in a frame (UDP checksum 0: none).
func udp4Frame(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, sport, dport uint16, data []byte) []byte {
	u := udp(sport, dport, data)
	ip := make([]byte, 20)
	ip[0], ip[8], ip[9] = 0x45, 64, unix.IPPROTO_UDP
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(u)))
	s4, d4 := src.As4(), dst.As4()
	copy(ip[12:], s4[:])
	copy(ip[16:], d4[:])
	binary.BigEndian.PutUint16(ip[10:], csum(ip, 0))
	return ether(dstMAC, srcMAC, unix.ETH_P_IP, append(ip, u...))
}

// ip6Frame is an IPv6 packet with a UDP or ICMPv6 payload (checksummed).
func ip6Frame(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, next byte, l4 []byte, csumAt int) []byte {
	s16, d16 := src.As16(), dst.As16()
	pseudo := append(append(append([]byte{}, s16[:]...), d16[:]...), 0, 0, byte(len(l4)>>8), byte(len(l4)), 0, 0, 0, next)
	var sum uint32
	for i := 0; i < len(pseudo); i += 2 {
		sum += uint32(pseudo[i])<<8 | uint32(pseudo[i+1])
	}
	binary.BigEndian.PutUint16(l4[csumAt:], csum(l4, sum))
	ip := make([]byte, 40)
	ip[0], ip[6], ip[7] = 0x60, next, 255
	binary.BigEndian.PutUint16(ip[4:], uint16(len(l4)))
	copy(ip[8:], s16[:])
	copy(ip[24:], d16[:])
	return ether(dstMAC, srcMAC, unix.ETH_P_IPV6, append(ip, l4...))
}

func udp6Frame(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, sport, dport uint16, data []byte) []byte {
	return ip6Frame(dstMAC, srcMAC, src, dst, unix.IPPROTO_UDP, udp(sport, dport, data), 6)
}

// neighborAdvert claims target for hw (solicited=0, override=1), to the
// all-nodes group.
func neighborAdvert(srcMAC net.HardwareAddr, src, target netip.Addr, hw net.HardwareAddr) []byte {
	na := make([]byte, 24, 32)
	na[0], na[4] = 136, 0x20 // type, override flag
	t16 := target.As16()
	copy(na[8:], t16[:])
	na = append(na, 2, 1) // target link-layer address option
	na = append(na, hw...)
	dst := netip.MustParseAddr("ff02::1")
	return ip6Frame(net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, srcMAC, src, dst, unix.IPPROTO_ICMPV6, na, 2)
}

// dadSolicit is the neighbour solicitation of duplicate address detection
// for target (from "::", to its solicited-node group).
func dadSolicit(srcMAC net.HardwareAddr, target netip.Addr) []byte {
	ns := make([]byte, 24)
	ns[0] = 135
	t16 := target.As16()
	copy(ns[8:], t16[:])
	group := netip.AddrFrom16([16]byte{0xff, 0x02, 11: 1, 12: 0xff, 13: t16[13], 14: t16[14], 15: t16[15]})
	dstMAC := net.HardwareAddr{0x33, 0x33, 0xff, t16[13], t16[14], t16[15]}
	return ip6Frame(dstMAC, srcMAC, netip.IPv6Unspecified(), group, unix.IPPROTO_ICMPV6, ns, 2)
}

// routerAdvert announces srcMAC's link-local src as a default router
// (lifetime 1800 s), to the all-nodes group.
func routerAdvert(srcMAC net.HardwareAddr, src netip.Addr) []byte {
	ra := make([]byte, 16, 24)
	ra[0], ra[4] = 134, 64                   // type, current hop limit
	binary.BigEndian.PutUint16(ra[6:], 1800) // router lifetime
	ra = append(ra, 1, 1)                    // source link-layer address option
	ra = append(ra, srcMAC...)
	dst := netip.MustParseAddr("ff02::1")
	return ip6Frame(net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, srcMAC, src, dst, unix.IPPROTO_ICMPV6, ra, 2)
}

// arpFrame is an ARP request (op 1) or reply (op 2) saying senderIP is at
// senderMAC.
func arpFrame(ethSrc net.HardwareAddr, op uint16, senderMAC net.HardwareAddr, senderIP, targetIP netip.Addr) []byte {
	a := []byte{0, 1, 8, 0, 6, 4, byte(op >> 8), byte(op)}
	s4, t4 := senderIP.As4(), targetIP.As4()
	a = append(append(a, senderMAC...), s4[:]...)
	a = append(append(a, make([]byte, 6)...), t4[:]...)
	return ether(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, ethSrc, unix.ETH_P_ARP, a)
}

// sendFrames writes raw frames on ifname inside n.
func sendFrames(t *testing.T, n ns, ifname string, frames ...[]byte) {
	t.Helper()
	err := n.do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		sa := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
		for _, f := range frames {
			copy(sa.Addr[:], f[:6])
			if err := unix.Sendto(fd, f, 0, sa); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send frames in %s: %v", n.name, err)
	}
}
