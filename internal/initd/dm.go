package initd

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Device-mapper through its ioctls on /dev/mapper/control (the guest has
// no libdevmapper, dmsetup or udev). linux/dm-ioctl.h, interface 4.
const (
	dmControl      = "/dev/mapper/control"
	dmIoctlSize    = 312 // sizeof(struct dm_ioctl)
	dmTargetSize   = 40  // sizeof(struct dm_target_spec)
	dmNameLen      = 128
	dmReadOnlyFlag = 1 << 0
	dmSecureData   = 1 << 15 // the kernel wipes the ioctl buffer (it holds a key)
)

// dmIoctl is _IOWR(0xfd, nr, struct dm_ioctl).
func dmIoctl(nr uintptr) uintptr {
	return 3<<30 | dmIoctlSize<<16 | 0xfd<<8 | nr
}

var (
	dmDevCreate  = dmIoctl(3)
	dmDevRemove  = dmIoctl(4)
	dmDevSuspend = dmIoctl(6) // without DM_SUSPEND_FLAG: resume (activate the loaded table)
	dmTableLoad  = dmIoctl(9)
)

// dmTarget is one line of a device-mapper table.
type dmTarget struct {
	Start, Length uint64 // 512-byte sectors
	Type          string // "crypt"
	Params        string
}

// dmHeader builds struct dm_ioctl for name with room for data bytes after it.
func dmHeader(name string, flags uint32, targets int, data int) []byte {
	b := make([]byte, dmIoctlSize+data)
	le := binary.NativeEndian
	le.PutUint32(b[0:], 4) // version 4.0.0
	le.PutUint32(b[12:], uint32(len(b)))
	le.PutUint32(b[16:], dmIoctlSize)
	le.PutUint32(b[20:], uint32(targets))
	le.PutUint32(b[28:], flags)
	copy(b[48:48+dmNameLen-1], name)
	return b
}

func dmCall(ctl *os.File, req uintptr, b []byte) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, ctl.Fd(), req, uintptr(unsafe.Pointer(&b[0])))
	if e != 0 {
		return e
	}
	return nil
}

// dmCreate creates device-mapper device name with table and activates it;
// it returns the device node it made, /dev/mapper/<name>. The table is
// passed with DM_SECURE_DATA so the kernel wipes its copy of the key.
func dmCreate(name string, readOnly bool, table []dmTarget) (string, error) {
	if len(name) >= dmNameLen || name == "" || bytes.ContainsAny([]byte(name), "/\x00") {
		return "", fmt.Errorf("dm name %q", name)
	}
	ctl, err := os.OpenFile(dmControl, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("device-mapper: %w (a kernel without dm-crypt?)", err)
	}
	defer ctl.Close()
	var flags uint32
	if readOnly {
		flags |= dmReadOnlyFlag
	}
	b := dmHeader(name, flags, 0, 0)
	if err := dmCall(ctl, dmDevCreate, b); err != nil {
		return "", fmt.Errorf("dm create %s: %w", name, err)
	}
	dev := binary.NativeEndian.Uint64(b[40:])
	ok := false
	defer func() {
		if !ok {
			_ = dmCall(ctl, dmDevRemove, dmHeader(name, 0, 0, 0))
		}
	}()

	if err := dmLoad(ctl, name, flags, table); err != nil {
		return "", err
	}
	node := filepath.Join("/dev/mapper", name)
	_ = os.Remove(node)
	if err := unix.Mknod(node, unix.S_IFBLK|0o600, int(unix.Mkdev(unix.Major(dev), unix.Minor(dev)))); err != nil {
		return "", fmt.Errorf("mknod %s: %w", node, err)
	}
	ok = true
	return node, nil
}

// dmLoad loads table into device-mapper device name and makes it live
// (resume: a live device is suspended, switched and resumed by the
// kernel). The table goes with DM_SECURE_DATA: the kernel wipes its copy
// of the key.
func dmLoad(ctl *os.File, name string, flags uint32, table []dmTarget) error {
	var specs []byte
	for _, t := range table {
		params := append([]byte(t.Params), 0)
		n := dmTargetSize + len(params)
		n = (n + 7) &^ 7
		s := make([]byte, n)
		le := binary.NativeEndian
		le.PutUint64(s[0:], t.Start)
		le.PutUint64(s[8:], t.Length)
		le.PutUint32(s[20:], uint32(n)) // next: offset of the next spec from this one
		copy(s[24:24+15], t.Type)
		copy(s[dmTargetSize:], params)
		specs = append(specs, s...)
	}
	b := dmHeader(name, flags|dmSecureData, len(table), len(specs))
	copy(b[dmIoctlSize:], specs)
	err := dmCall(ctl, dmTableLoad, b)
	clear(b)
	clear(specs)
	if err != nil {
		return fmt.Errorf("dm load table of %s: %w", name, err)
	}
	if err := dmCall(ctl, dmDevSuspend, dmHeader(name, flags, 0, 0)); err != nil {
		return fmt.Errorf("dm resume %s: %w", name, err)
	}
	return nil
}

// dmReload swaps the table of the live device name for table.
func dmReload(ctl *os.File, name string, table ...dmTarget) error {
	return dmLoad(ctl, name, 0, table)
}

// dmRemove removes device-mapper device name (at shutdown, after its
// filesystem is unmounted or read-only).
func dmRemove(name string) error {
	ctl, err := os.OpenFile(dmControl, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer ctl.Close()
	return dmCall(ctl, dmDevRemove, dmHeader(name, 0, 0, 0))
}
