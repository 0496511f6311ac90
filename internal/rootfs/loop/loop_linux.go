// Package loop attaches files to loop block devices for the host's own
// mounts of machine disks (docker cp on a stopped machine). Every device
// it attaches clears itself (LO_FLAGS_AUTOCLEAR) when its last user goes:
// the caller's descriptor and the mounts made from it. A killed daemon
// leaves no device attached: its descriptors close and its private
// mounts end with it.
package loop

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Device is an attached loop device. Close drops this process's hold on
// it; the device detaches once nothing mounted from it remains.
type Device struct {
	f    *os.File
	Path string // /dev/loopN
}

// Close releases the descriptor of the device.
func (d *Device) Close() error { return d.f.Close() }

// attempts bounds the race with other processes taking the free device
// this one was handed.
const attempts = 16

// Attach attaches file (read-only when readOnly) to a free loop device.
func Attach(file string, readOnly bool) (*Device, error) {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	backing, err := os.OpenFile(file, flag|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("loop: %w", err)
	}
	defer backing.Close()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("loop: %w (load the loop module: modprobe loop)", err)
	}
	defer ctl.Close()
	cfg := unix.LoopConfig{Fd: uint32(backing.Fd())}
	cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
	if readOnly {
		cfg.Info.Flags |= unix.LO_FLAGS_READ_ONLY
	}
	for range attempts {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("loop: find a free device: %w", err)
		}
		path := fmt.Sprintf("/dev/loop%d", n)
		dev, err := os.OpenFile(path, flag|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("loop: %w", err)
		}
		err = unix.IoctlLoopConfigure(int(dev.Fd()), &cfg)
		if err == nil {
			return &Device{f: dev, Path: path}, nil
		}
		dev.Close()
		if !errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("loop: attach %s to %s: %w", file, path, err)
		}
		// Another process took it between GET_FREE and CONFIGURE: retry.
	}
	return nil, fmt.Errorf("loop: attach %s: every free device was taken by others %d times", file, attempts)
}
