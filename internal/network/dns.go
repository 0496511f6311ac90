package network

import (
	"bufio"
	"io"
	"net/netip"
	"os"
	"strings"
)

// hostDNS returns the nameservers in resolv.conf that a guest can reach:
// loopback resolvers (127.0.0.53 of systemd-resolved, a local dnsmasq) are
// skipped; when none is left systemd-resolved's upstream list is tried, then
// FallbackDNS.
func hostDNS(path string) []string {
	if ns := reachableNameservers(path); len(ns) > 0 {
		return ns
	}
	if ns := reachableNameservers("/run/systemd/resolve/resolv.conf"); len(ns) > 0 {
		return ns
	}
	return append([]string(nil), FallbackDNS...)
}

func reachableNameservers(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	return parseResolvConf(f)
}

func parseResolvConf(f io.Reader) []string {
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(strings.SplitN(fields[1], "%", 2)[0])
		if err != nil || a.IsLoopback() || a.IsUnspecified() || a.IsLinkLocalUnicast() {
			continue
		}
		out = append(out, a.String())
	}
	return out
}
