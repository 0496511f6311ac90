package network

import (
	"bufio"
	"io"
	"net/netip"
	"os"
	"strings"
)

// hostUpstreams returns the nameservers of the host's resolv.conf for the
// resolvers to forward to. Loopback resolvers (systemd-resolved's
// 127.0.0.53, a local dnsmasq) are kept: the daemon asks them, not the
// guest. With none, FallbackDNS.
func hostUpstreams(path string) []string {
	f, err := os.Open(path)
	if err == nil {
		defer f.Close()
		if ns := parseResolvConf(f); len(ns) > 0 {
			return ns
		}
	}
	return append([]string(nil), FallbackDNS...)
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
		if err != nil || a.IsUnspecified() || a.IsLinkLocalUnicast() {
			continue
		}
		out = append(out, a.String())
	}
	return out
}
