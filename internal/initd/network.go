package initd

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/guest"
)

// configureNetwork brings up lo and every configured interface with its
// addresses (IPv6 without duplicate address detection, so they are usable
// at once), MTU and default routes.
func configureNetwork(ifs []guest.Interface, log *Logger) error {
	if err := loopbackUp(); err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	if len(ifs) == 0 {
		return nil
	}
	links, err := netlink.LinkList()
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	for _, ifc := range ifs {
		link := findLink(links, ifc)
		if link == nil {
			return &guest.Failure{Reason: guest.ReasonNetwork, Message: fmt.Sprintf("no interface %s%s", ifc.Name, ifc.MAC)}
		}
		if err := configureLink(link, ifc); err != nil {
			return &guest.Failure{Reason: guest.ReasonNetwork, Message: err.Error()}
		}
		log.Infof("%s up: %s", ifc.Name, strings.Join(ifc.Addresses, " "))
	}
	return nil
}

func findLink(links []netlink.Link, ifc guest.Interface) netlink.Link {
	if ifc.MAC != "" {
		mac, _ := net.ParseMAC(ifc.MAC)
		for _, l := range links {
			if strings.EqualFold(l.Attrs().HardwareAddr.String(), mac.String()) {
				return l
			}
		}
	}
	for _, l := range links {
		if ifc.Name != "" && l.Attrs().Name == ifc.Name {
			return l
		}
	}
	return nil
}

func configureLink(link netlink.Link, ifc guest.Interface) error {
	name := link.Attrs().Name
	if ifc.Name != "" && name != ifc.Name {
		if err := netlink.LinkSetName(link, ifc.Name); err != nil {
			return fmt.Errorf("rename %s to %s: %w", name, ifc.Name, err)
		}
		name = ifc.Name
	}
	if ifc.MTU != 0 {
		if err := netlink.LinkSetMTU(link, ifc.MTU); err != nil {
			return fmt.Errorf("%s mtu %d: %w", name, ifc.MTU, err)
		}
	}
	for _, a := range ifc.Addresses {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return err
		}
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if p.Addr().Is6() {
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrAdd(link, addr); err != nil {
			return fmt.Errorf("%s address %s: %w", name, a, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("%s up: %w", name, err)
	}
	for _, gw := range []string{ifc.Gateway4, ifc.Gateway6} {
		if gw == "" {
			continue
		}
		ip := net.ParseIP(gw)
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: ip, Flags: int(netlink.FLAG_ONLINK)}
		if ip.To4() == nil {
			r.Family = netlink.FAMILY_V6
			r.Flags = 0
		}
		if err := netlink.RouteAdd(r); err != nil {
			return fmt.Errorf("%s default route via %s: %w", name, gw, err)
		}
	}
	return nil
}

// loopbackUp sets lo up with one ioctl (cheaper than a netlink round trip
// at every boot; the kernel gives lo its addresses).
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer func() { _ = unix.Close(fd) }()
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
