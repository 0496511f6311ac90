package vmm

import (
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Sandbox confines a VMM beyond what the VMM does to itself (QEMU's
// -sandbox seccomp filter, Firecracker's jailer):
//
//   - it runs as a uid (and the equal gid) of its own, taken from UIDs and
//     locked for as long as the VMM lives, so no two live VMMs on the host
//     share one and none can signal, trace or read another; with no
//     supplementary groups but Groups (the group of /dev/kvm when it uses
//     KVM);
//   - it gets its files as inherited descriptors (Plan.Extra), so it needs
//     no access to any path; the few it opens by name anyway and that
//     belong to the machine alone (QEMU's -initrd) are in Chown and are
//     given to its uid first;
//   - it runs in a cgroup of its own sized to the machine plus the VMM's
//     overhead (Cgroup).
type Sandbox struct {
	UIDs   UIDRange `json:"uids"`
	Groups []int    `json:"groups,omitempty"`
	Chown  []string `json:"chown,omitempty"`
	Cgroup *Cgroup  `json:"cgroup,omitempty"`
}

// UIDRange is the block of uids VMMs run as: Count uids from Base (each
// with the gid of the same number; neither needs an /etc/passwd entry). A
// VMM's uid is held by an flock on LockDir/<uid>.lock that the VMM
// inherits, so it is free again the moment the VMM exits, with or without
// a daemon, and daemons of different data roots on one host never hand out
// the same uid.
type UIDRange struct {
	Base    int    `json:"base"`
	Count   int    `json:"count"`
	LockDir string `json:"lock_dir"`
}

// The default uid block: 65536 uids from 0x5F000000 (1593835520), inside
// the range systemd leaves to containers and user namespaces
// (65536–1879048191), where no account of the host lives.
const (
	DefaultUIDBase    = 0x5F000000
	DefaultUIDCount   = 65536
	DefaultUIDLockDir = "/run/ferry-vmm/uids"
)

// DefaultUIDs is the default uid block.
func DefaultUIDs() UIDRange {
	return UIDRange{Base: DefaultUIDBase, Count: DefaultUIDCount, LockDir: DefaultUIDLockDir}
}

// Validate reports a range that cannot be used.
func (r UIDRange) Validate() error {
	if r.Base < 1000 || r.Count < 1 || int64(r.Base)+int64(r.Count) > 1<<31-1 || r.LockDir == "" || !filepath.IsAbs(r.LockDir) {
		return fmt.Errorf("vmm uids %d+%d (lock dir %q): want a base ≥ 1000, a count ≥ 1, below 2^31, and an absolute lock dir: %w",
			r.Base, r.Count, r.LockDir, errdefs.ErrInvalidArgument)
	}
	return nil
}

// lock takes a free uid of r, trying first the one key hashes to, and
// returns it with its locked file (the VMM must inherit it).
func (r UIDRange) lock(key string) (int, *os.File, error) {
	if err := r.Validate(); err != nil {
		return 0, nil, err
	}
	if err := os.MkdirAll(r.LockDir, 0o700); err != nil {
		return 0, nil, fmt.Errorf("vmm uid locks: %w", err)
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	start := int(h.Sum32() % uint32(r.Count)) //nolint:gosec // G115: Count is positive and below 2^31
	for i := range r.Count {
		uid := r.Base + (start+i)%r.Count
		f, err := os.OpenFile(filepath.Join(r.LockDir, strconv.Itoa(uid)+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return 0, nil, fmt.Errorf("vmm uid lock: %w", err)
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return uid, f, nil
		}
		_ = f.Close()
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return 0, nil, fmt.Errorf("vmm uid lock %d: %w", uid, err)
		}
	}
	return 0, nil, fmt.Errorf("all %d VMM uids from %d are in use: %w", r.Count, r.Base, errdefs.ErrUnavailable)
}
