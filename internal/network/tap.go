package network

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tapPrefix marks ferry's TAPs; Reconcile only ever deletes links with it.
const tapPrefix = "ft-"

// TapName is the TAP of a machine: "ft-" and 12 hex digits of the SHA-256 of
// its ID (within IFNAMSIZ, stable across daemon restarts).
func TapName(machineID string) string {
	h := sha256.Sum256([]byte(machineID))
	return tapPrefix + hex.EncodeToString(h[:6])
}

// MAC is a machine's guest MAC: locally administered, unicast, derived from
// its ID.
func MAC(machineID string) string {
	h := sha256.Sum256([]byte("mac:" + machineID))
	return fmt.Sprintf("02:fe:%02x:%02x:%02x:%02x", h[0], h[1], h[2], h[3])
}

func isOurTap(name string) bool {
	return strings.HasPrefix(name, tapPrefix) && len(name) == len(tapPrefix)+12
}

type ifreq struct {
	name  [unix.IFNAMSIZ]byte
	flags uint16
	_     [22]byte
}

// openTap creates (or re-opens) the persistent TAP name in namespace n and
// returns its open queue. Persistent, so it exists for Firecracker to open by
// name and outlives the daemon; Release deletes it. IFF_VNET_HDR lets the
// VMM offload checksums and segmentation.
func openTap(n ns, name string, owner int) (*os.File, error) {
	var f *os.File
	err := n.do(func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		var req ifreq
		copy(req.name[:], name)
		req.flags = unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req))); e != 0 {
			unix.Close(fd)
			return fmt.Errorf("create tap %s: %w", name, e)
		}
		if owner > 0 {
			if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETOWNER, uintptr(owner)); e != 0 {
				unix.Close(fd)
				return fmt.Errorf("tap %s owner %d: %w", name, owner, e)
			}
		}
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETPERSIST, 1); e != 0 {
			unix.Close(fd)
			return fmt.Errorf("persist tap %s: %w", name, e)
		}
		f = os.NewFile(uintptr(fd), "tap:"+name)
		return nil
	})
	return f, err
}
