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
	fd := int(f.Fd())
	v, err := unix.IoctlRetInt(fd, kvmGetAPIVersion)
	if err != nil || v != kvmAPIVersion {
		return fmt.Errorf("kvm: %s: API version %d, want %d (%w): %w", dev, v, kvmAPIVersion, err, errdefs.ErrUnavailable)
	}
	vm, err := unix.IoctlRetInt(fd, kvmCreateVM)
	if err != nil {
		return fmt.Errorf("kvm: %s: create VM: %w: %w", dev, err, errdefs.ErrUnavailable)
	}
	return unix.Close(vm)
}
