package initd

import (
	"fmt"
	"strings"

	"github.com/ferryvm/ferry/internal/guest"
)

// HostsFile is /etc/hosts: localhost (unless the config names it), the
// config's entries, and the hostname on loopback when no entry names it.
func HostsFile(cfg *guest.RunConfig) []byte {
	var b strings.Builder
	named := map[string]bool{}
	for _, h := range cfg.Hosts {
		for _, n := range h.Names {
			named[n] = true
		}
	}
	if !named["localhost"] {
		b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	}
	for _, h := range cfg.Hosts {
		fmt.Fprintf(&b, "%s\t%s\n", h.IP, strings.Join(h.Names, " "))
	}
	if cfg.Hostname != "" && !named[cfg.Hostname] {
		fmt.Fprintf(&b, "127.0.1.1\t%s\n", cfg.Hostname)
	}
	return []byte(b.String())
}

// ResolvConf is /etc/resolv.conf for d.
func ResolvConf(d *guest.DNS) []byte {
	var b strings.Builder
	for _, ns := range d.Nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", ns)
	}
	if len(d.Search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(d.Search, " "))
	}
	if len(d.Options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(d.Options, " "))
	}
	return []byte(b.String())
}
