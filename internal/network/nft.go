package network

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
)

// NAT and published ports are nftables rules in one table ferry owns
// (`table ip ferry`), loaded with `nft -f -` so every change is one atomic
// transaction, found and removed without parsing anybody else's rules, and
// gone with one `delete table`. (iptables here is iptables-nft anyway; its
// rules would live in shared chains that ferry would have to tag and
// search.) Published ports are elements of one map, so adding or removing a
// machine's ports is adding or deleting elements, never editing rules.
//
//	postrouting  masquerade the subnet's egress; masquerade hairpin and
//	             127.0.0.1 traffic DNATed to a machine (so replies return)
//	prerouting   packets to a local address: DNAT through @ports
//	output       the same for the host's own connections (127.0.0.1
//	             included; route_localnet is set on the bridge)
//	forward      accept to and from the bridge
//	@ports       map  proto . host port : machine address . guest port

func (nw *Network) baseRules() string {
	t, br, sn := nw.cfg.Table, nw.cfg.Bridge, nw.cfg.Subnet.String()
	return fmt.Sprintf(`add table ip %[1]s
add map ip %[1]s ports { type inet_proto . inet_service : ipv4_addr . inet_service; }
add chain ip %[1]s postrouting { type nat hook postrouting priority srcnat; policy accept; }
add chain ip %[1]s prerouting { type nat hook prerouting priority dstnat; policy accept; }
add chain ip %[1]s output { type nat hook output priority -100; policy accept; }
add chain ip %[1]s forward { type filter hook forward priority filter; policy accept; }
flush chain ip %[1]s postrouting
flush chain ip %[1]s prerouting
flush chain ip %[1]s output
flush chain ip %[1]s forward
add rule ip %[1]s postrouting ip saddr %[3]s ip daddr != %[3]s masquerade comment "ferry egress"
add rule ip %[1]s postrouting oifname "%[2]s" ct status dnat ip saddr %[3]s masquerade comment "ferry hairpin"
add rule ip %[1]s postrouting oifname "%[2]s" ip saddr 127.0.0.0/8 masquerade comment "ferry localhost ports"
add rule ip %[1]s prerouting fib daddr type local dnat ip to meta l4proto . th dport map @ports
add rule ip %[1]s output fib daddr type local dnat ip to meta l4proto . th dport map @ports
add rule ip %[1]s forward iifname "%[2]s" accept
add rule ip %[1]s forward oifname "%[2]s" accept
`, t, br, sn)
}

func (nw *Network) nft(ctx context.Context, script string) error {
	_, err := nw.ns.run(ctx, script, "nft", "-f", "-")
	return err
}

func (nw *Network) portElems(ip netip.Addr, ports []Port) string {
	var e []string
	for _, p := range ports {
		e = append(e, fmt.Sprintf("%s . %d : %s . %d", p.Proto, p.HostPort, ip, p.GuestPort))
	}
	return strings.Join(e, ", ")
}

func (nw *Network) addPorts(ctx context.Context, ip netip.Addr, ports []Port) error {
	if len(ports) == 0 {
		return nil
	}
	return nw.nft(ctx, fmt.Sprintf("add element ip %s ports { %s }\n", nw.cfg.Table, nw.portElems(ip, ports)))
}

// deletePorts removes the machine's elements that are present (deleting an
// absent element fails the whole nft transaction, so look first).
func (nw *Network) deletePorts(ctx context.Context, ip netip.Addr) error {
	elems, err := nw.listPorts(ctx)
	if err != nil {
		return err
	}
	var keys []string
	for _, e := range elems {
		if e.IP == ip {
			keys = append(keys, fmt.Sprintf("%s . %d", e.Proto, e.HostPort))
		}
	}
	if len(keys) == 0 {
		return nil
	}
	return nw.nft(ctx, fmt.Sprintf("delete element ip %s ports { %s }\n", nw.cfg.Table, strings.Join(keys, ", ")))
}

// portElem is one element of the ports map.
type portElem struct {
	Port
	IP netip.Addr
}

// listPorts reads the ports map (nft -j).
func (nw *Network) listPorts(ctx context.Context) ([]portElem, error) {
	out, err := nw.ns.run(ctx, "", "nft", "-j", "list", "map", "ip", nw.cfg.Table, "ports")
	if err != nil {
		return nil, err
	}
	return parsePortMap(out)
}

func parsePortMap(out []byte) ([]portElem, error) {
	var doc struct {
		Nftables []struct {
			Map *struct {
				Elem [][2]struct {
					Concat []json.RawMessage `json:"concat"`
				} `json:"elem"`
			} `json:"map"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("parse nft ports map: %w", err)
	}
	var elems []portElem
	for _, o := range doc.Nftables {
		if o.Map == nil {
			continue
		}
		for _, kv := range o.Map.Elem {
			if len(kv[0].Concat) != 2 || len(kv[1].Concat) != 2 {
				continue
			}
			var e portElem
			var ip string
			if json.Unmarshal(kv[0].Concat[0], &e.Proto) != nil ||
				json.Unmarshal(kv[0].Concat[1], &e.HostPort) != nil ||
				json.Unmarshal(kv[1].Concat[0], &ip) != nil ||
				json.Unmarshal(kv[1].Concat[1], &e.GuestPort) != nil {
				return nil, fmt.Errorf("parse nft ports map element %s", kv[0].Concat)
			}
			a, err := netip.ParseAddr(ip)
			if err != nil {
				return nil, fmt.Errorf("parse nft ports map: %w", err)
			}
			e.IP = a
			elems = append(elems, e)
		}
	}
	return elems, nil
}
