package machine

import (
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"strings"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/network"
)

// Defaults for an unset Guest.
const (
	DefaultCPUs     = 1
	DefaultMemoryMB = 256
)

var (
	envKeyRE = regexp.MustCompile(`^[^=\x00]+$`)
	nameRE   = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)
)

// ValidName reports whether s can name a machine or an app.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// ValidateConfig fills c's defaults and reports its first problem as an
// ErrInvalidArgument naming the field.
func ValidateConfig(c *types.Config) error {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("config.%s: %s: %w", field, fmt.Sprintf(format, a...), errdefs.ErrInvalidArgument)
	}
	if strings.TrimSpace(c.Image) == "" {
		return bad("image", "required")
	}
	for k := range c.Env {
		if !envKeyRE.MatchString(k) {
			return bad("env", "key %q is not a valid variable name", k)
		}
	}
	if len(c.Init.Exec) > 0 && (c.Init.Entrypoint != nil || c.Init.Cmd != nil) {
		return bad("init.exec", "excludes init.entrypoint and init.cmd")
	}
	if d := c.Init.WorkingDir; d != "" && !path.IsAbs(d) {
		return bad("init.working_dir", "%q is not an absolute path", d)
	}
	if strings.Count(c.Init.User, ":") > 1 || strings.ContainsAny(c.Init.User, "\x00\n ") {
		return bad("init.user", "%q is not user, uid, user:group or uid:gid", c.Init.User)
	}
	switch c.Init.CgroupVersion {
	case "", guest.CgroupV2, guest.CgroupHybrid, guest.CgroupV1:
	default:
		return bad("init.cgroup_version", "%q is not v2, hybrid or v1", c.Init.CgroupVersion)
	}
	switch {
	case c.Guest.CPUs < 0 || c.Guest.CPUs > 32:
		return bad("guest.cpus", "%d out of range 1..32", c.Guest.CPUs)
	case c.Guest.MemoryMB < 0:
		return bad("guest.memory_mb", "%d is negative", c.Guest.MemoryMB)
	case c.Guest.MemoryMB != 0 && c.Guest.MemoryMB < 32:
		return bad("guest.memory_mb", "%d is below the 32 MB a guest needs", c.Guest.MemoryMB)
	}
	if c.Guest.CPUs == 0 {
		c.Guest.CPUs = DefaultCPUs
	}
	if c.Guest.MemoryMB == 0 {
		c.Guest.MemoryMB = DefaultMemoryMB
	}
	seen := map[string]bool{}
	for i, s := range c.Services {
		if s.Protocol == "" {
			c.Services[i].Protocol = "tcp"
		}
		if p := c.Services[i].Protocol; p != "tcp" && p != "udp" {
			return bad(fmt.Sprintf("services[%d].protocol", i), "%q: want tcp or udp", p)
		}
		if s.InternalPort < 1 || s.InternalPort > 65535 {
			return bad(fmt.Sprintf("services[%d].internal_port", i), "%d out of range 1..65535", s.InternalPort)
		}
		for j, p := range s.Ports {
			if p.Port < 0 || p.Port > 65535 {
				return bad(fmt.Sprintf("services[%d].ports[%d].port", i, j), "%d out of range 0..65535", p.Port)
			}
			ip, err := hostIP(p.HostIP)
			if err != nil {
				return bad(fmt.Sprintf("services[%d].ports[%d].host_ip", i, j), "%q is not an IP address", p.HostIP)
			}
			key := fmt.Sprintf("%s/%s/%d", c.Services[i].Protocol, ip, p.Port)
			if p.Port != 0 && seen[key] {
				return bad(fmt.Sprintf("services[%d].ports[%d].port", i, j), "host port %d published twice", p.Port)
			}
			seen[key] = true
		}
	}
	if err := validateMounts(c.Mounts); err != nil {
		return err
	}
	switch c.Restart.Policy {
	case "":
		c.Restart.Policy = types.RestartNo
	case types.RestartNo, types.RestartAlways, types.RestartOnFailure:
	default:
		return bad("restart.policy", "%q: want no, always or on-failure", c.Restart.Policy)
	}
	if c.Restart.MaxRetries < 0 || (c.Restart.MaxRetries > 0 && c.Restart.Policy != types.RestartOnFailure) {
		return bad("restart.max_retries", "%d: only on-failure takes a non-negative retry count", c.Restart.MaxRetries)
	}
	if c.Hostname != "" && !guest.ValidHostname(c.Hostname) {
		return bad("hostname", "%q is not a valid host name", c.Hostname)
	}
	switch c.VMM {
	case "", "qemu", "firecracker":
	default:
		return bad("vmm", "%q: want qemu or firecracker", c.VMM)
	}
	for i, n := range c.Networks {
		if !network.ValidName(n.Network) && len(n.Network) != 64 {
			return bad(fmt.Sprintf("networks[%d].network", i), "%q is not a network name", n.Network)
		}
		for _, a := range n.Aliases {
			if !network.ValidName(a) {
				return bad(fmt.Sprintf("networks[%d].aliases", i), "%q is not a DNS label", a)
			}
		}
		if n.IPv4.IsValid() && !n.IPv4.Is4() {
			return bad(fmt.Sprintf("networks[%d].ipv4", i), "%s is not an IPv4 address", n.IPv4)
		}
		if n.IPv6.IsValid() && !n.IPv6.Is6() {
			return bad(fmt.Sprintf("networks[%d].ipv6", i), "%s is not an IPv6 address", n.IPv6)
		}
	}
	if err := c.Healthcheck.Validate(); err != nil {
		return bad("healthcheck", "%v", err)
	}
	for i, h := range c.ExtraHosts {
		if _, _, err := parseExtraHost(h); err != nil {
			return bad(fmt.Sprintf("extra_hosts[%d]", i), "%q: %v", h, err)
		}
	}
	return nil
}

// cloneConfig returns a deep copy of c.
func cloneConfig(c types.Config) types.Config {
	out := c
	out.Env = cloneMap(c.Env)
	out.Metadata = cloneMap(c.Metadata)
	out.Init.Exec = cloneSlice(c.Init.Exec)
	out.Init.Entrypoint = cloneSlice(c.Init.Entrypoint)
	out.Init.Cmd = cloneSlice(c.Init.Cmd)
	out.Services = make([]types.Service, len(c.Services))
	for i, s := range c.Services {
		out.Services[i] = s
		out.Services[i].Ports = cloneSlice(s.Ports)
	}
	if c.Services == nil {
		out.Services = nil
	}
	out.Mounts = cloneSlice(c.Mounts)
	for i, mt := range out.Mounts {
		if mt.Encrypted != nil {
			e := *mt.Encrypted
			out.Mounts[i].Encrypted = &e
		}
	}
	out.DNS = cloneSlice(c.DNS)
	out.Networks = cloneSlice(c.Networks)
	for i := range out.Networks {
		out.Networks[i].Aliases = cloneSlice(c.Networks[i].Aliases)
	}
	out.ExtraHosts = cloneSlice(c.ExtraHosts)
	out.Healthcheck = cloneHealthcheck(c.Healthcheck)
	return out
}

// parseExtraHost reads Docker's --add-host NAME:IP (or NAME=IP; an IPv6
// address may be in brackets).
func parseExtraHost(s string) (string, netip.Addr, error) {
	i := strings.IndexAny(s, ":=")
	if i <= 0 {
		return "", netip.Addr{}, fmt.Errorf("want NAME:IP")
	}
	name, ip := s[:i], strings.TrimSuffix(strings.TrimPrefix(s[i+1:], "["), "]")
	if !guest.ValidHostname(name) {
		return "", netip.Addr{}, fmt.Errorf("%q is not a host name", name)
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return "", netip.Addr{}, fmt.Errorf("%q is not an IP address", ip)
	}
	return name, a, nil
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func cloneSlice[T any](s []T) []T {
	if s == nil {
		return nil
	}
	return append(make([]T, 0, len(s)), s...)
}
