package cli

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/network"
)

func newPortCmd(g *globals) *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use:   "port MACHINE [GUEST_PORT[/PROTO]]",
		Short: "List a machine's published ports (or where one guest port is published)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			m, err := c.GetMachine(cmd.Context(), app, args[0])
			if err != nil {
				return err
			}
			var want *network.Port
			if len(args) == 2 {
				p, err := network.ParsePort(args[1])
				if err != nil || p.HostPort != 0 || p.HostIP.IsValid() {
					return fmt.Errorf("port %q: want GUEST_PORT[/tcp|udp]: %w", args[1], errdefs.ErrInvalidArgument)
				}
				want = &p
			}
			n := 0
			for _, b := range publishedPorts(m) {
				if want != nil && (b.guest != want.GuestPort || b.proto != want.Protocol) {
					continue
				}
				n++
				if want != nil {
					fmt.Fprintln(g.out, b.host)
				} else {
					fmt.Fprintf(g.out, "%d/%s -> %s\n", b.guest, b.proto, b.host)
				}
			}
			if want != nil && n == 0 {
				return fmt.Errorf("machine %s has no published port for %d/%s: %w", m.Name, want.GuestPort, want.Protocol, errdefs.ErrNotFound)
			}
			return nil
		},
	}
	appFlag(cmd, &app)
	return cmd
}

// binding is one host socket a guest port is published on.
type binding struct {
	guest uint16
	proto string
	host  string // HOST:PORT, [IPv6]:PORT
}

// publishedPorts lists where a running machine's ports are published, as
// Docker shows them: a port on every address is 0.0.0.0 and, on a dual
// stack network, [::] too.
func publishedPorts(m *types.Machine) []binding {
	if m.Network == nil {
		return nil
	}
	dual := false
	if eps := m.Network.Endpoints; len(eps) > 0 {
		dual = eps[0].IPv6.IsValid()
	}
	var out []binding
	for _, p := range m.Network.Ports {
		port := strconv.Itoa(int(p.HostPort))
		hosts := []string{"0.0.0.0"}
		switch {
		case p.HostIP != "":
			hosts = []string{p.HostIP}
		case dual:
			hosts = append(hosts, "::")
		}
		for _, h := range hosts {
			out = append(out, binding{guest: uint16(p.GuestPort), proto: p.Protocol, host: net.JoinHostPort(h, port)})
		}
	}
	return out
}

// portsColumn is ps's PORTS: 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp.
func portsColumn(m *types.Machine) string {
	var out []string
	for _, b := range publishedPorts(m) {
		out = append(out, fmt.Sprintf("%s->%d/%s", b.host, b.guest, b.proto))
	}
	return strings.Join(out, ", ")
}

// networksColumn is ps's NETWORKS: the machine's networks, primary first.
func networksColumn(m *types.Machine) string {
	var out []string
	if m.Network != nil {
		for _, e := range m.Network.Endpoints {
			out = append(out, e.Network)
		}
	} else {
		for _, e := range m.Config.Networks {
			out = append(out, e.Network)
		}
	}
	return strings.Join(out, ",")
}
