package network

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Defaults.
const (
	DefaultBridge = "ferry0"
	// DefaultSubnet is the default network's: a /22 (1021 machines) in 10/8
	// away from the ranges Docker (172.17+/16, 192.168/20 pools), libvirt
	// (192.168.122/24), Podman (10.88/16), Kubernetes defaults (10.96/12,
	// 10.244/16) and CGNAT (100.64/10) hand out.
	DefaultSubnet = "10.213.0.0/22"
	// DefaultPool is where other networks' subnets come from (/24s: 512
	// networks), next to the default one.
	DefaultPool = "10.214.0.0/15"
	// DefaultTable names ferry's nftables tables (families inet and bridge).
	DefaultTable = "ferry"
	// DefaultNetwork is the default app's network (bridge ferry0).
	DefaultNetwork = "default"
	// NoNetwork is Docker's --network none: a machine on it has no NIC
	// (its loopback only), no address and no name in any resolver.
	NoNetwork = "none"
)

// FallbackDNS are the resolver's upstreams when the host's resolv.conf
// lists none.
var FallbackDNS = []string{"1.1.1.1", "8.8.8.8"}

// Config is the service's required shape; zero fields take defaults.
type Config struct {
	Bridge   string       // the default network's bridge; default ferry0
	Subnet   netip.Prefix // the default network's subnet; gateway is its first address
	Pool     netip.Prefix // other networks' subnets; default 10.214.0.0/15
	PoolBits int          // their prefix length; default 24
	NetNS    string       // named netns (/var/run/netns/NAME); "" = the caller's
	Table    string       // nftables tables; default "ferry"
	// DNS, when set, are the guests' nameservers instead of their network's
	// resolver (which then still answers on the gateway).
	DNS []string
	// Upstreams are where the resolvers forward names that are not
	// machines'; default the host's resolv.conf (loopback resolvers
	// included: the daemon, not the guest, asks them).
	Upstreams []string
	// AllowLinkLocal lets guests reach 169.254.0.0/16 (cloud metadata
	// services) through the host; off by default.
	AllowLinkLocal bool
	// Served are extra ports guests may reach on their gateway (the
	// daemon's registry mirror); DNS is always served.
	Served []Port
	// TapOwner, when not 0, is the uid that may open machines' TAPs without
	// CAP_NET_ADMIN (Firecracker under jailer --uid opens its TAP by name).
	TapOwner int
}

// Users reports the machines whose configuration names a network (stopped
// ones included), so a network in use is not removed. The daemon supplies
// it from the machine manager.
type Users func(ctx context.Context, networkID, name string) ([]string, error)

type options struct {
	logger     *slog.Logger
	resolvConf string
	users      Users
}

// Option sets an optional setting.
type Option func(*options)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithResolvConf reads the host's nameservers from path instead of
// /etc/resolv.conf.
func WithResolvConf(path string) Option { return func(o *options) { o.resolvConf = path } }

// WithUsers sets how Remove and Prune learn which machines are configured
// on a network.
func WithUsers(u Users) Option { return func(o *options) { o.users = u } }

var (
	ifnameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}$`)
	netnsRE  = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
	// labelRE is a DNS label (RFC 2181 allows '_'; compose names use it).
	labelRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?$`)
)

// ValidName reports whether s can name a network or be an alias: one DNS
// label (letters, digits, '-', '_'; at most 63).
func ValidName(s string) bool { return labelRE.MatchString(s) }

func (c *Config) setDefaults() error {
	if c.Bridge == "" {
		c.Bridge = DefaultBridge
	}
	if !c.Subnet.IsValid() {
		c.Subnet = netip.MustParsePrefix(DefaultSubnet)
	}
	if !c.Pool.IsValid() {
		c.Pool = netip.MustParsePrefix(DefaultPool)
	}
	if c.PoolBits == 0 {
		c.PoolBits = 24
	}
	if c.Table == "" {
		c.Table = DefaultTable
	}
	c.Subnet, c.Pool = c.Subnet.Masked(), c.Pool.Masked()
	switch {
	case !ifnameRE.MatchString(c.Bridge):
		return fmt.Errorf("network: bridge name %q: %w", c.Bridge, errdefs.ErrInvalidArgument)
	case !ifnameRE.MatchString(c.Table):
		return fmt.Errorf("network: nft table %q: %w", c.Table, errdefs.ErrInvalidArgument)
	case c.NetNS != "" && !netnsRE.MatchString(c.NetNS):
		return fmt.Errorf("network: netns name %q: %w", c.NetNS, errdefs.ErrInvalidArgument)
	}
	if err := checkSubnet4(c.Subnet); err != nil {
		return fmt.Errorf("network: %w", err)
	}
	if err := checkSubnet4(c.Pool); err != nil || c.PoolBits < c.Pool.Bits() || c.PoolBits > 30 {
		return fmt.Errorf("network: pool %s split into /%d: %w", c.Pool, c.PoolBits, errdefs.ErrInvalidArgument)
	}
	return nil
}

func checkSubnet4(p netip.Prefix) error {
	switch {
	case !p.Addr().Is4():
		return fmt.Errorf("subnet %s is not IPv4: %w", p, errdefs.ErrInvalidArgument)
	case p.Bits() > 30 || p.Bits() < 8:
		return fmt.Errorf("subnet %s: prefix length must be 8..30: %w", p, errdefs.ErrInvalidArgument)
	}
	return nil
}
