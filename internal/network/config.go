package network

import (
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Defaults.
const (
	DefaultBridge = "ferry0"
	// DefaultSubnet is a /22 (1021 machines) in 10/8 away from the ranges
	// Docker (172.17+/16, 192.168/20 pools), libvirt (192.168.122/24),
	// Podman (10.88/16), Kubernetes defaults (10.96/12, 10.244/16) and CGNAT
	// (100.64/10) hand out.
	DefaultSubnet = "10.213.0.0/22"
	// DefaultTable is the nftables table (family ip) ferry owns.
	DefaultTable = "ferry"
)

// FallbackDNS are the guests' nameservers when the host's resolv.conf has
// only loopback resolvers (systemd-resolved, dnsmasq) a guest cannot reach.
var FallbackDNS = []string{"1.1.1.1", "8.8.8.8"}

// Config is the network's required shape; zero fields take defaults.
type Config struct {
	Bridge string       // bridge name; default ferry0
	Subnet netip.Prefix // machine subnet; gateway is its first address
	NetNS  string       // named netns (/var/run/netns/NAME); "" = the caller's
	Table  string       // nftables table; default "ferry"
	DNS    []string     // guests' nameservers; default from the host's resolv.conf
	// TapOwner, when not 0, is the uid that may open machines' TAPs without
	// CAP_NET_ADMIN (Firecracker under jailer --uid opens its TAP by name).
	TapOwner int
}

type options struct {
	logger     *slog.Logger
	resolvConf string
}

// Option sets an optional setting.
type Option func(*options)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithResolvConf reads the host's nameservers from path instead of
// /etc/resolv.conf.
func WithResolvConf(path string) Option { return func(o *options) { o.resolvConf = path } }

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}$`)

func (c *Config) setDefaults() error {
	if c.Bridge == "" {
		c.Bridge = DefaultBridge
	}
	if !c.Subnet.IsValid() {
		c.Subnet = netip.MustParsePrefix(DefaultSubnet)
	}
	if c.Table == "" {
		c.Table = DefaultTable
	}
	c.Subnet = c.Subnet.Masked()
	switch {
	case !nameRE.MatchString(c.Bridge):
		return fmt.Errorf("network: bridge name %q: %w", c.Bridge, errdefs.ErrInvalidArgument)
	case !nameRE.MatchString(c.Table):
		return fmt.Errorf("network: nft table %q: %w", c.Table, errdefs.ErrInvalidArgument)
	case c.NetNS != "" && !regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`).MatchString(c.NetNS):
		return fmt.Errorf("network: netns name %q: %w", c.NetNS, errdefs.ErrInvalidArgument)
	case !c.Subnet.Addr().Is4():
		return fmt.Errorf("network: subnet %s: only IPv4 subnets: %w", c.Subnet, errdefs.ErrInvalidArgument)
	case c.Subnet.Bits() > 30 || c.Subnet.Bits() < 8:
		return fmt.Errorf("network: subnet %s: prefix length must be 8..30: %w", c.Subnet, errdefs.ErrInvalidArgument)
	}
	return nil
}

// Gateway is the bridge's address: the subnet's first host.
func (c Config) Gateway() netip.Addr { return c.Subnet.Addr().Next() }
