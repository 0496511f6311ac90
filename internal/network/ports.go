package network

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Port is a published port: HostPort on the host (0 in a request: pick a
// free one) forwards to GuestPort on the machine.
type Port struct {
	HostPort  uint16 `json:"host_port"`
	GuestPort uint16 `json:"guest_port"`
	Proto     string `json:"proto"` // "tcp" or "udp"
}

func (p Port) String() string {
	return fmt.Sprintf("%d:%d/%s", p.HostPort, p.GuestPort, p.Proto)
}

// ParsePort parses Docker's -p forms ferry supports: HOST:GUEST[/PROTO]
// and GUEST[/PROTO] (a random free host port).
func ParsePort(s string) (Port, error) {
	bad := func(why string) (Port, error) {
		return Port{}, fmt.Errorf("publish %q: %s (want HOST:GUEST[/tcp|udp] or GUEST[/tcp|udp]): %w", s, why, errdefs.ErrInvalidArgument)
	}
	p := Port{Proto: "tcp"}
	spec := s
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		spec, p.Proto = s[:i], strings.ToLower(s[i+1:])
		if p.Proto != "tcp" && p.Proto != "udp" {
			return bad("protocol must be tcp or udp")
		}
	}
	parts := strings.Split(spec, ":")
	num := func(x string) (uint16, bool) {
		n, err := strconv.ParseUint(x, 10, 16)
		return uint16(n), err == nil && n > 0
	}
	var ok bool
	switch len(parts) {
	case 1:
		if p.GuestPort, ok = num(parts[0]); !ok {
			return bad("bad guest port")
		}
	case 2:
		if p.HostPort, ok = num(parts[0]); !ok {
			return bad("bad host port")
		}
		if p.GuestPort, ok = num(parts[1]); !ok {
			return bad("bad guest port")
		}
	default:
		return bad("host addresses are not supported")
	}
	return p, nil
}

// probePort checks that proto/port can be bound on every address of the
// namespace and, for port 0, returns a free one. The socket is closed at
// once: the port is then served by DNAT rules, not by a listener.
func probePort(n ns, proto string, port uint16) (uint16, error) {
	var got uint16
	err := n.do(func() error {
		var addr net.Addr
		switch proto {
		case "udp":
			c, err := net.ListenPacket("udp4", fmt.Sprintf("0.0.0.0:%d", port))
			if err != nil {
				return err
			}
			addr = c.LocalAddr()
			_ = c.Close()
		default:
			l, err := net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port))
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
	if errors.Is(err, syscall.EADDRINUSE) {
		return 0, fmt.Errorf("publish %d/%s: port already in use on the host: %w", port, proto, errdefs.ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("publish %d/%s: %w", port, proto, err)
	}
	return got, nil
}
