package template

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/ferryvm/ferry/internal/vmm"
)

// InitPrefix is how much of a machine's initramfs Key.Init hashes: its
// start is the shared archive, whose first entry is the digest of
// everything in it (ferry-init, modules), so the prefix identifies the
// shared archive while the per-machine files after it do not count.
const InitPrefix = 4 << 10

// VMMInfo is what a key needs to know of the VMM that runs a template.
type VMMInfo struct {
	Name    string // "qemu"
	Version string // the binary's version line
	Accel   string // "tcg", "kvm"
	Control string // "serial" or "vsock"
}

// SpecKey is the template key of machines started with spec (its
// Cmdline the template's, with guest.WarmCmdline): the kernel's hash, the
// initramfs's shared prefix, the VMM, vCPUs, memory and device layout.
func SpecKey(spec vmm.Spec, v VMMInfo, h *Hasher) (Key, error) {
	kernel, err := h.File(spec.Kernel, -1)
	if err != nil {
		return Key{}, err
	}
	var init string
	if spec.Initrd != "" {
		if init, err = h.File(spec.Initrd, InitPrefix); err != nil {
			return Key{}, err
		}
	}
	l := Layout{NICs: len(spec.NICs), Control: v.Control, ACPI: spec.ACPI, QMP: true}
	for _, d := range spec.Drives {
		l.Drives = append(l.Drives, DriveShape{ReadOnly: d.ReadOnly})
	}
	k := Key{VMM: v.Name, VMMVersion: v.Version, Accel: v.Accel, Kernel: kernel, Init: init, Cmdline: spec.Cmdline,
		VCPUs: spec.VCPUs, MemoryMiB: spec.MemoryMiB, Layout: l}
	return k, k.Validate()
}

// Hasher hashes files for keys and remembers each hash by the file's
// identity (device, inode, size, times), so a kernel is read once per
// change, not once per start.
type Hasher struct {
	mu    sync.Mutex
	known map[string]hashed
}

type hashed struct {
	id  fileID
	sum string
}

// File is the SHA-256 of path's content (hex), or of its first limit
// bytes when limit ≥ 0.
func (h *Hasher) File(path string, limit int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("template: hash %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("template: hash %s: %w", path, err)
	}
	key := fmt.Sprintf("%s\x00%d", path, limit)
	id := identity(fi)
	h.mu.Lock()
	if c, ok := h.known[key]; ok && c.id == id {
		h.mu.Unlock()
		return c.sum, nil
	}
	h.mu.Unlock()
	var r io.Reader = f
	if limit >= 0 {
		r = io.LimitReader(f, limit)
	}
	s := sha256.New()
	if _, err := io.Copy(s, r); err != nil {
		return "", fmt.Errorf("template: hash %s: %w", path, err)
	}
	sum := hex.EncodeToString(s.Sum(nil))
	h.mu.Lock()
	if h.known == nil {
		h.known = map[string]hashed{}
	}
	h.known[key] = hashed{id, sum}
	h.mu.Unlock()
	return sum, nil
}
