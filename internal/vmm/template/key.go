// Package template keeps warm-start templates: guests saved by their VMM
// while ferry-init waits for its run config, before it has mounted a disk
// or configured a network (docs/warm-starts.md). A template is keyed by
// everything the saved guest depends on — kernel, ferry-init build, VMM and
// its version, accelerator, vCPUs, memory and device layout — so a change
// to any of them selects another template and an old one is never
// restored. Templates are written atomically (a full disk or a crash leaves
// no half template) and checked before use (format version, key, size and
// SHA-256 of the saved state); one that fails a check is removed and
// reported missing, so the caller rebuilds it or boots cold.
package template

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// FormatVersion is the version of the on-disk layout and of the key's
// meaning. Bumping it invalidates every template. 2: guest RAM in a
// memory file beside the state (saved with x-ignore-shared).
const FormatVersion = 2

// Key is everything a saved guest depends on. Two machines may restore the
// same template only when their keys are equal.
type Key struct {
	// VMM is the driver ("qemu", "firecracker"), VMMVersion its version
	// string (a migration stream is only read back by the same build),
	// Accel its accelerator ("tcg", "kvm").
	VMM        string `json:"vmm"`
	VMMVersion string `json:"vmm_version"`
	Accel      string `json:"accel,omitempty"`
	// Kernel and Init are content hashes (FileHash) of the guest kernel and
	// of the shared initramfs that holds ferry-init.
	Kernel string `json:"kernel"`
	Init   string `json:"init"`
	// Cmdline is the kernel command line the template booted with.
	Cmdline   string `json:"cmdline,omitempty"`
	VCPUs     int    `json:"vcpus"`
	MemoryMiB int    `json:"memory_mib"`
	Layout    Layout `json:"layout"`
}

// Layout is the device layout of a machine: what its saved device state
// describes. Backing files, TAPs and sockets are not part of it (a restore
// brings its own); sizes are not either (the host resizes each drive after
// restore).
type Layout struct {
	// Drives lists, in /dev/vdX order, whether each drive is read-only.
	Drives []DriveShape `json:"drives,omitempty"`
	NICs   int          `json:"nics,omitempty"`
	// Control is the control channel's transport: "serial" (QEMU's
	// virtio-serial port) or "vsock" (Firecracker).
	Control string `json:"control"`
	ACPI    bool   `json:"acpi,omitempty"`
	// QMP says the VMM serves a QMP monitor (needed to resume a restore).
	QMP bool `json:"qmp,omitempty"`
}

// DriveShape is one drive of a Layout.
type DriveShape struct {
	ReadOnly bool `json:"read_only,omitempty"`
}

// Validate says what is missing from k.
func (k Key) Validate() error {
	switch {
	case k.VMM == "" || k.VMMVersion == "":
		return fmt.Errorf("template key: the VMM and its version are required: %w", errdefs.ErrInvalidArgument)
	case k.Kernel == "" || k.Init == "":
		return fmt.Errorf("template key: the kernel and ferry-init hashes are required: %w", errdefs.ErrInvalidArgument)
	case k.VCPUs < 1 || k.MemoryMiB < 1:
		return fmt.Errorf("template key: %d vCPUs, %d MiB: both must be positive: %w", k.VCPUs, k.MemoryMiB, errdefs.ErrInvalidArgument)
	case k.Layout.Control == "":
		return fmt.Errorf("template key: the control channel's transport is required: %w", errdefs.ErrInvalidArgument)
	}
	return nil
}

// ID names k's template: a hash of the format version and the key's
// canonical JSON, so any field that changes gives another ID.
func (k Key) ID() string {
	b, err := json.Marshal(struct {
		Version int `json:"version"`
		Key     Key `json:"key"`
	}{FormatVersion, k})
	if err != nil {
		panic(err) // plain data: cannot fail
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// FileHash is the SHA-256 of a file's content, hex: what Key.Kernel and
// Key.Init hold.
func FileHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("template: hash %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("template: hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
