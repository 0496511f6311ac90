package guest

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"strings"
)

// ErrInvalidConfig marks a run config that cannot be used. Host code wraps
// it into errdefs.ErrInvalidArgument at its edge (this package cannot import
// host-side packages).
var ErrInvalidConfig = errors.New("invalid run config")

// Validate checks c for everything that can be checked without the guest's
// devices and files. It is run by the host before writing the config and by
// init after reading it.
func (c *RunConfig) Validate() error {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }

	if c.Version != ConfigVersion {
		bad("version %d is not supported (want %d)", c.Version, ConfigVersion)
	}
	if len(c.Argv()) == 0 {
		bad("no command: image has no entrypoint or cmd and no override is given")
	}
	for i, a := range c.Argv() {
		if strings.IndexByte(a, 0) >= 0 {
			bad("argv[%d] contains a NUL byte", i)
		}
	}
	if len(c.Override.Exec) > 0 && (c.Override.Entrypoint != nil || c.Override.Cmd != nil) {
		bad("override.exec excludes override.entrypoint and override.cmd")
	}
	for _, e := range append(append([]string{}, c.Image.Env...), c.Override.Env...) {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" || strings.IndexByte(e, 0) >= 0 {
			bad("env %q is not KEY=value", e)
		}
	}
	for _, u := range []string{c.Image.User, c.Override.User} {
		if strings.ContainsAny(u, "\x00\n") || strings.Count(u, ":") > 1 {
			bad("user %q is not name, uid, uid:gid or name:group", u)
		}
	}
	for _, d := range []string{c.Image.WorkingDir, c.Override.WorkingDir} {
		if d != "" && !path.IsAbs(d) {
			bad("working dir %q is not absolute", d)
		}
	}
	if c.Hostname != "" && !ValidHostname(c.Hostname) {
		bad("hostname %q is not a valid host name", c.Hostname)
	}
	for _, h := range c.Hosts {
		if _, err := netip.ParseAddr(h.IP); err != nil {
			bad("hosts entry: %q is not an IP address", h.IP)
		}
		if len(h.Names) == 0 {
			bad("hosts entry %s has no names", h.IP)
		}
		for _, n := range h.Names {
			if !ValidHostname(n) {
				bad("hosts entry %s: %q is not a valid host name", h.IP, n)
			}
		}
	}
	if c.DNS != nil {
		for _, ns := range c.DNS.Nameservers {
			if _, err := netip.ParseAddr(ns); err != nil {
				bad("nameserver %q is not an IP address", ns)
			}
		}
		for _, s := range append(append([]string{}, c.DNS.Search...), c.DNS.Options...) {
			if s == "" || strings.ContainsAny(s, " \t\n\x00") {
				bad("dns search/option %q is empty or has blanks", s)
			}
		}
	}
	for i, n := range c.Network {
		validateInterface(i, n, bad)
	}
	validateRoot(c.Root, bad)
	for _, m := range c.Mounts {
		if m.Source == "" || !path.IsAbs(m.Target) || path.Clean(m.Target) == "/" {
			bad("mount %q on %q: need a source and an absolute target other than /", m.Source, m.Target)
		}
		for _, o := range m.Options {
			if strings.ContainsAny(o, ",\x00") {
				bad("mount %s: option %q contains a comma or NUL", m.Target, o)
			}
		}
		validateVolume(m, bad)
	}
	switch c.CgroupVersion {
	case "", CgroupV2, CgroupHybrid, CgroupV1:
	default:
		bad("cgroup_version %q is not %s, %s or %s", c.CgroupVersion, CgroupV2, CgroupHybrid, CgroupV1)
	}
	switch c.Power.Method {
	case "", PowerReboot, PowerPoweroff, PowerHalt:
	default:
		bad("power method %q is not reboot, poweroff or halt", c.Power.Method)
	}
	if c.ConsoleRecords < 0 {
		bad("console_records %d is negative", c.ConsoleRecords)
	}
	if c.AttachTimeoutMS < 0 {
		bad("attach_timeout_ms %d is negative", c.AttachTimeoutMS)
	}
	if c.AttachTimeoutMS > 0 && !c.Attach {
		bad("attach_timeout_ms without attach")
	}
	if c.Power.ExitGraceMS < 0 || c.Power.StopGraceMS < 0 || c.Root.WaitMS < 0 {
		bad("negative timeouts")
	}
	if len(errs) > 0 {
		return fmt.Errorf("run config: %s: %w", strings.Join(errs, "; "), ErrInvalidConfig)
	}
	return nil
}

func validateInterface(i int, n Interface, bad func(string, ...any)) {
	if n.Name == "" && n.MAC == "" {
		bad("network[%d]: needs a name or a mac", i)
	}
	if n.Name != "" && (len(n.Name) > 15 || strings.ContainsAny(n.Name, "/ \x00:")) {
		bad("network[%d]: %q is not an interface name", i, n.Name)
	}
	if n.MAC != "" {
		if _, err := net.ParseMAC(n.MAC); err != nil {
			bad("network[%d]: mac %q: %v", i, n.MAC, err)
		}
	}
	for _, a := range n.Addresses {
		if _, err := netip.ParsePrefix(a); err != nil {
			bad("network[%d]: address %q is not a CIDR", i, a)
		}
	}
	if g := n.Gateway4; g != "" {
		if a, err := netip.ParseAddr(g); err != nil || !a.Is4() {
			bad("network[%d]: gateway4 %q is not an IPv4 address", i, g)
		}
	}
	if g := n.Gateway6; g != "" {
		if a, err := netip.ParseAddr(g); err != nil || !a.Is6() || a.Is4In6() {
			bad("network[%d]: gateway6 %q is not an IPv6 address", i, g)
		}
	}
	if n.MTU != 0 && (n.MTU < 68 || n.MTU > 65535) {
		bad("network[%d]: mtu %d out of range", i, n.MTU)
	}
}

func validateRoot(r Root, bad func(string, ...any)) {
	switch r.Mode {
	case RootOverlay, RootSingle:
	default:
		bad("root mode %q is not %q or %q", r.Mode, RootOverlay, RootSingle)
	}
	if !strings.HasPrefix(r.Device, "/dev/") {
		bad("root device %q is not under /dev/", r.Device)
	}
	if r.Scratch != "" && (r.Mode != RootOverlay || !strings.HasPrefix(r.Scratch, "/dev/") || r.Scratch == r.Device) {
		bad("root scratch %q: needs overlay mode and a /dev/ path other than the base", r.Scratch)
	}
	for _, t := range []string{r.FSType, r.ScratchFSType} {
		if strings.ContainsAny(t, " ,/\x00") {
			bad("fstype %q is not a file system type", t)
		}
	}
}

// validateVolume checks the block-volume fields of a mount.
func validateVolume(m Mount, bad func(string, ...any)) {
	device := strings.HasPrefix(m.Source, "/dev/")
	if (m.Encryption != nil || m.Format || m.Grow) && !device {
		bad("mount %s: encryption, format and grow need a /dev/ source, not %q", m.Target, m.Source)
	}
	if (m.Format || m.Grow) && m.FSType != "" && m.FSType != "ext4" {
		bad("mount %s: init formats and grows only ext4, not %s", m.Target, m.FSType)
	}
	if e := m.Encryption; e != nil {
		if e.Type != EncryptionLUKS2 {
			bad("mount %s: encryption %q is not %s", m.Target, e.Type, EncryptionLUKS2)
		}
		if k, err := base64.StdEncoding.DecodeString(e.Key); err != nil || len(k) == 0 {
			bad("mount %s: encryption key is not non-empty base64", m.Target)
		}
	}
	if m.FSType == FSTypeVirtioFS && (device || m.Source == "" || strings.ContainsAny(m.Source, "/ \x00")) {
		bad("mount %s: virtiofs source %q is not a tag", m.Target, m.Source)
	}
	if strings.ContainsAny(m.Name, "\x00\n") {
		bad("mount %s: name has a NUL or newline", m.Target)
	}
}

// validHostname reports whether s is an RFC 1123 host name.
func ValidHostname(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '-' && r != '_' {
				return false
			}
		}
	}
	return true
}
