package network

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// tapPrefix marks ferry's TAPs; Reconcile only ever deletes links with it.
const tapPrefix = "ft-"

// TapName is a machine's TAP on a network: "ft-" and 12 hex digits of the
// SHA-256 of both IDs (within IFNAMSIZ, stable across daemon restarts).
func TapName(machineID, networkID string) string {
	h := sha256.Sum256([]byte(machineID + "\x00" + networkID))
	return tapPrefix + hex.EncodeToString(h[:6])
}

// MAC is a machine's guest MAC on a network: locally administered, unicast,
// derived from both IDs.
func MAC(machineID, networkID string) string {
	h := sha256.Sum256([]byte("mac:" + machineID + "\x00" + networkID))
	return fmt.Sprintf("02:fe:%02x:%02x:%02x:%02x", h[0], h[1], h[2], h[3])
}

func isOurTap(name string) bool {
	return strings.HasPrefix(name, tapPrefix) && len(name) == len(tapPrefix)+12
}

// openTap creates (or re-opens) the persistent TAP name in namespace n and
// returns its open queue. Persistent, so it exists for Firecracker to open by
// name and outlives the daemon; Release deletes it. IFF_VNET_HDR lets the
// VMM offload checksums and segmentation. owner > 0 lets that uid open it.
func openTap(n ns, name string, owner int) (*os.File, error) {
	var f *os.File
	err := n.do(func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		fail := func(what string, err error) error {
			_ = unix.Close(fd)
			return fmt.Errorf("%s tap %s: %w", what, name, err)
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return fail("name", err)
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			return fail("create", err)
		}
		if owner > 0 {
			if err := unix.IoctlSetInt(fd, unix.TUNSETOWNER, owner); err != nil {
				return fail("set owner of", err)
			}
		}
		if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1); err != nil {
			return fail("persist", err)
		}
		f = os.NewFile(uintptr(fd), "tap:"+name)
		return nil
	})
	return f, err
}
