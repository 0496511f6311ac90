package vmm

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// KVMDevice is the KVM device node.
const KVMDevice = "/dev/kvm"

const (
	kvmGetAPIVersion = 0xAE00 // _IO(KVMIO, 0x00)
	kvmCreateVM      = 0xAE01 // _IO(KVMIO, 0x01)
	kvmAPIVersion    = 12
)

// KVMUsable reports whether this process can run KVM guests: /dev/kvm opens
// read-write, speaks API version 12 and creates a VM. A nil error means
// usable; otherwise the error (ErrUnavailable) says what is missing.
func KVMUsable() error { return kvmUsable(KVMDevice) }

func kvmUsable(dev string) error {
	f, err := os.OpenFile(dev, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("kvm: %w: %w", err, errdefs.ErrUnavailable)
	}
	defer f.Close()
	v, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), kvmGetAPIVersion, 0)
	if errno != 0 || v != kvmAPIVersion {
		return fmt.Errorf("kvm: %s: API version %d (%v), want %d: %w", dev, v, errno, kvmAPIVersion, errdefs.ErrUnavailable)
	}
	vm, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), kvmCreateVM, 0)
	if errno != 0 {
		return fmt.Errorf("kvm: %s: create VM: %v: %w", dev, errno, errdefs.ErrUnavailable)
	}
	unix.Close(int(vm))
	return nil
}
