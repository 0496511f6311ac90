package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Port is a published port: HostPort on the host (0 in a request: pick a
// free one) forwards to GuestPort on the machine. With HostIP set only
// connections to that host address are forwarded (Docker's
// -p 127.0.0.1:8080:80); unset, every address of the host is.
//
// It is the one port type of the machine path: the CLI parses -p into it
// (ParsePort), internal/machine derives it from a machine config's services,
// and Attach resolves and records it.
type Port struct {
	Protocol  string     `json:"protocol"` // "tcp" or "udp"
	HostIP    netip.Addr `json:"host_ip,omitzero"`
	HostPort  uint16     `json:"host_port"`
	GuestPort uint16     `json:"guest_port"`
}

func (p Port) String() string {
	s := fmt.Sprintf("%d:%d/%s", p.HostPort, p.GuestPort, p.Protocol)
	switch {
	case p.HostIP.Is6():
		return "[" + p.HostIP.String() + "]:" + s
	case p.HostIP.IsValid():
		return p.HostIP.String() + ":" + s
	}
	return s
}

// overlaps reports whether p and q would claim the same host socket: same
// protocol and port, and the same address or either on every address.
func (p Port) overlaps(q Port) bool {
	return p.Protocol == q.Protocol && p.HostPort == q.HostPort &&
		(!p.HostIP.IsValid() || !q.HostIP.IsValid() || p.HostIP == q.HostIP)
}

// ParsePort parses Docker's -p forms: [IP:]HOST:GUEST[/PROTO] (host port
// 0: a random free one),
// IP::GUEST[/PROTO] (a random free host port on IP) and GUEST[/PROTO] (a
// random free host port on every address). An IPv6 address is written in
// brackets: [::1]:8080:80.
func ParsePort(s string) (Port, error) {
	bad := func(why string) (Port, error) {
		return Port{}, fmt.Errorf("publish %q: %s (want [IP:][HOST:]GUEST[/tcp|udp]): %w", s, why, errdefs.ErrInvalidArgument)
	}
	p := Port{Protocol: "tcp"}
	spec := s
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		spec, p.Protocol = s[:i], strings.ToLower(s[i+1:])
		if p.Protocol != "tcp" && p.Protocol != "udp" {
			return bad("protocol must be tcp or udp")
		}
	}
	if strings.HasPrefix(spec, "[") {
		end := strings.Index(spec, "]:")
		if end < 0 {
			return bad("unterminated [IPv6 address]")
		}
		a, err := netip.ParseAddr(spec[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return bad("bad IPv6 host address")
		}
		p.HostIP, spec = a, spec[end+2:]
		if strings.Count(spec, ":") != 1 {
			return bad("want [IPv6]:HOST:GUEST")
		}
	}
	parts := strings.Split(spec, ":")
	num := func(x string) (uint16, bool) {
		n, err := strconv.ParseUint(x, 10, 16)
		return uint16(n), err == nil && n > 0
	}
	var ok bool
	var host, guest string
	switch len(parts) {
	case 1:
		guest = parts[0]
	case 2:
		host, guest = parts[0], parts[1]
	case 3:
		if p.HostIP.IsValid() {
			return bad("two host addresses")
		}
		a, err := netip.ParseAddr(parts[0])
		if err != nil || !a.Is4() {
			return bad("bad host address (an IPv6 one goes in brackets)")
		}
		p.HostIP, host, guest = a, parts[1], parts[2]
	default:
		return bad("too many ':'")
	}
	if host != "" {
		n, err := strconv.ParseUint(host, 10, 16)
		if err != nil {
			return bad("bad host port")
		}
		p.HostPort = uint16(n) // 0: a random free port, as Docker
	} else if len(parts) == 2 && !p.HostIP.IsValid() {
		return bad("bad host port")
	}
	if p.GuestPort, ok = num(guest); !ok {
		return bad("bad guest port")
	}
	return p, nil
}

// probePort checks that proto/port can be bound on the port's host address
// (every address of the namespace when it has none) and, for port 0,
// returns a free one. The socket is closed at once: the port is then served
// by DNAT rules, not by a listener.
func probePort(n ns, p Port) (uint16, error) {
	host := "0.0.0.0"
	if p.HostIP.IsValid() {
		host = p.HostIP.String()
	}
	hostport := net.JoinHostPort(host, strconv.Itoa(int(p.HostPort)))
	var got uint16
	err := n.do(func() error {
		var addr net.Addr
		switch p.Protocol {
		case "udp":
			c, err := net.ListenPacket("udp4", hostport)
			if err != nil {
				return err
			}
			addr = c.LocalAddr()
			_ = c.Close()
		default:
			l, err := net.Listen("tcp4", hostport)
			if err != nil {
				return err
			}
			addr = l.Addr()
			_ = l.Close()
		}
		_, ps, _ := net.SplitHostPort(addr.String())
		v, _ := strconv.ParseUint(ps, 10, 16)
		got = uint16(v)
		return nil
	})
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return 0, fmt.Errorf("publish %s: port already in use on the host: %w", p, errdefs.ErrConflict)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return 0, fmt.Errorf("publish %s: %s is not an address of this host; give one of its addresses or none: %w", p, p.HostIP, errdefs.ErrInvalidArgument)
	case err != nil:
		return 0, fmt.Errorf("publish %s: %w", p, err)
	}
	return got, nil
}
