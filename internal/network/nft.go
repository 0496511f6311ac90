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
//	prerouting   packets to a local address: DNAT through @addrports
//	             (ports published on one host address), else @ports
//	output       the same for the host's own connections (127.0.0.1
//	             included; route_localnet is set on the bridge)
//	forward      accept to and from the bridge
//	@addrports   map  host address . proto . host port : machine address . guest port
//	@ports       map  proto . host port : machine address . guest port
//	             (published on every host address)

func (nw *Network) baseRules() string {
	t, br, sn := nw.cfg.Table, nw.cfg.Bridge, nw.cfg.Subnet.String()
	return fmt.Sprintf(`add table ip %[1]s
add map ip %[1]s ports { type inet_proto . inet_service : ipv4_addr . inet_service; }
add map ip %[1]s addrports { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
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
add rule ip %[1]s prerouting fib daddr type local dnat ip to ip daddr . meta l4proto . th dport map @addrports
add rule ip %[1]s prerouting fib daddr type local dnat ip to meta l4proto . th dport map @ports
add rule ip %[1]s output fib daddr type local dnat ip to ip daddr . meta l4proto . th dport map @addrports
add rule ip %[1]s output fib daddr type local dnat ip to meta l4proto . th dport map @ports
add rule ip %[1]s forward iifname "%[2]s" accept
add rule ip %[1]s forward oifname "%[2]s" accept
`, t, br, sn)
}

func (nw *Network) nft(ctx context.Context, script string) error {
	_, err := nw.ns.run(ctx, script, "nft", "-f", "-")
	return err
}

// portMap is the map a published port lives in, and its key there.
func portMap(p Port) (string, string) {
	if p.HostIP.IsValid() {
		return "addrports", fmt.Sprintf("%s . %s . %d", p.HostIP, p.Protocol, p.HostPort)
	}
	return "ports", fmt.Sprintf("%s . %d", p.Protocol, p.HostPort)
}

// portScript adds (verb "add") or deletes ("delete") the elements of ports
// that forward to ip, one transaction.
func (nw *Network) portScript(verb string, ip netip.Addr, ports []Port) string {
	var b strings.Builder
	for _, p := range ports {
		m, key := portMap(p)
		if verb == "add" {
			key += fmt.Sprintf(" : %s . %d", ip, p.GuestPort)
		}
		fmt.Fprintf(&b, "%s element ip %s %s { %s }\n", verb, nw.cfg.Table, m, key)
	}
	return b.String()
}

func (nw *Network) addPorts(ctx context.Context, ip netip.Addr, ports []Port) error {
	if len(ports) == 0 {
		return nil
	}
	return nw.nft(ctx, nw.portScript("add", ip, ports))
}

// deletePorts removes the machine's elements that are present (deleting an
// absent element fails the whole nft transaction, so look first).
func (nw *Network) deletePorts(ctx context.Context, ip netip.Addr) error {
	elems, err := nw.listPorts(ctx)
	if err != nil {
		return err
	}
	var mine []Port
	for _, e := range elems {
		if e.IP == ip {
			mine = append(mine, e.Port)
		}
	}
	if len(mine) == 0 {
		return nil
	}
	return nw.nft(ctx, nw.portScript("delete", ip, mine))
}

// portElem is one element of the port maps: the published port and the
// machine address it forwards to.
type portElem struct {
	Port
	IP netip.Addr
}

// listPorts reads both port maps (nft -j).
func (nw *Network) listPorts(ctx context.Context) ([]portElem, error) {
	var all []portElem
	for _, m := range []string{"ports", "addrports"} {
		out, err := nw.ns.run(ctx, "", "nft", "-j", "list", "map", "ip", nw.cfg.Table, m)
		if err != nil {
			return nil, err
		}
		elems, err := parsePortMap(out)
		if err != nil {
			return nil, err
		}
		all = append(all, elems...)
	}
	return all, nil
}

// parsePortMap reads the elements of `nft -j list map` of either map: keys
// are proto . port, or address . proto . port.
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
			key, val := kv[0].Concat, kv[1].Concat
			if (len(key) != 2 && len(key) != 3) || len(val) != 2 {
				continue
			}
			var e portElem
			var hostIP, ip string
			if len(key) == 3 {
				if json.Unmarshal(key[0], &hostIP) != nil {
					return nil, fmt.Errorf("parse nft ports map element %s", key)
				}
				key = key[1:]
			}
			if json.Unmarshal(key[0], &e.Protocol) != nil ||
				json.Unmarshal(key[1], &e.HostPort) != nil ||
				json.Unmarshal(val[0], &ip) != nil ||
				json.Unmarshal(val[1], &e.GuestPort) != nil {
				return nil, fmt.Errorf("parse nft ports map element %s", key)
			}
			a, err := netip.ParseAddr(ip)
			if err != nil {
				return nil, fmt.Errorf("parse nft ports map: %w", err)
			}
			e.IP = a
			if hostIP != "" {
				if e.HostIP, err = netip.ParseAddr(hostIP); err != nil {
					return nil, fmt.Errorf("parse nft ports map: %w", err)
				}
			}
			elems = append(elems, e)
		}
	}
	return elems, nil
}
