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

// overlaps reports whether two published ports would take the same host
// socket: the same protocol and port on addresses that overlap (one of them
// every address of a family the other has, or the same address).
func (p Port) overlaps(o Port) bool {
	if p.Protocol != o.Protocol || p.HostPort != o.HostPort {
		return false
	}
	covers := func(a, b netip.Addr) bool { // a's addresses include b's
		switch {
		case !a.IsValid():
			return true
		case a.IsUnspecified():
			return !b.IsValid() || a.Is4() == b.Is4()
		}
		return a == b
	}
	return covers(p.HostIP, o.HostIP) || covers(o.HostIP, p.HostIP)
}

// probePort checks that proto/port can be bound on the port's host address
// (every address of both families when unset) in the namespace and, for
// port 0, returns a free one. The sockets are closed at once: the port is
// then served by DNAT rules, not by a listener.
func probePort(n ns, p Port) (uint16, error) {
	type try struct{ network, addr string }
	var tries []try
	suffix := map[bool]string{true: "4", false: "6"}
	switch {
	case !p.HostIP.IsValid():
		tries = []try{{p.Protocol + "4", "0.0.0.0"}, {p.Protocol + "6", "::"}}
	default:
		tries = []try{{p.Protocol + suffix[p.HostIP.Is4()], p.HostIP.String()}}
	}
	port := p.HostPort
	err := n.do(func() error {
		for i, t := range tries {
			addr := net.JoinHostPort(t.addr, strconv.Itoa(int(port)))
			var local net.Addr
			if p.Protocol == "udp" {
				c, err := net.ListenPacket(t.network, addr)
				if err != nil {
					if i > 0 && noIPv6(err) {
						continue
					}
					return err
				}
				local = c.LocalAddr()
				_ = c.Close()
			} else {
				l, err := net.Listen(t.network, addr)
				if err != nil {
					if i > 0 && noIPv6(err) {
						continue
					}
					return err
				}
				local = l.Addr()
				_ = l.Close()
			}
			_, ps, _ := net.SplitHostPort(local.String())
			v, _ := strconv.ParseUint(ps, 10, 16)
			port = uint16(v)
		}
		return nil
	})
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return 0, fmt.Errorf("publish %s: port already in use on the host: %w", p, errdefs.ErrConflict)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return 0, fmt.Errorf("publish %s: %s is not an address of this host: %w", p, p.HostIP, errdefs.ErrInvalidArgument)
	case err != nil:
		return 0, fmt.Errorf("publish %s: %w", p, err)
	}
	return port, nil
}

// noIPv6 reports an error from a namespace without IPv6.
func noIPv6(err error) bool {
	return errors.Is(err, syscall.EAFNOSUPPORT) || errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EPROTONOSUPPORT)
}
