package vmm

import (
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

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
//
// With DropsItself the VMM is a wrapper that drops to the uid on its own
// (Firecracker's jailer: it chroots first): Run starts it as root with
// UIDArg and GIDArg in Plan.Args replaced by the uid, and holds the uid's
// lock until the process runs as it (the jailer closes every inherited
// descriptor); from then on the live process itself marks the uid taken.
type Sandbox struct {
	UIDs        UIDRange `json:"uids"`
	Groups      []int    `json:"groups,omitempty"`
	Chown       []string `json:"chown,omitempty"`
	Cgroup      *Cgroup  `json:"cgroup,omitempty"`
	DropsItself bool     `json:"drops_itself,omitempty"`
}

// UIDArg and GIDArg stand for the VMM's uid and gid in the arguments of a
// plan whose VMM drops privileges itself.
const (
	UIDArg = "{uid}"
	GIDArg = "{gid}"
)

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

// lock takes a free uid of r — its lock file unlocked and no process
// running as it — trying first the one key hashes to, and returns it with
// its locked file.
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
	busy := r.running()
	for i := range r.Count {
		uid := r.Base + (start+i)%r.Count
		if busy[uid] {
			continue
		}
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

// running returns the uids of r that live processes run as (real or
// effective).
func (r UIDRange) running() map[int]bool {
	busy := map[int]bool{}
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return busy
	}
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		for _, uid := range procUIDs(e.Name()) {
			if uid >= r.Base && uid < r.Base+r.Count {
				busy[uid] = true
			}
		}
	}
	return busy
}

// procUIDs returns the real and effective uid of process pid.
func procUIDs(pid string) []int {
	b, err := os.ReadFile(filepath.Join(procRoot, pid, "status"))
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "Uid:" {
			real, _ := strconv.Atoi(f[1])
			eff, _ := strconv.Atoi(f[2])
			return []int{real, eff}
		}
	}
	return nil
}

// waitUID waits (a few seconds at most) until process pid runs as uid, or
// has exited.
func waitUID(pid, uid int) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		ids := procUIDs(strconv.Itoa(pid))
		if ids == nil || (ids[0] == uid && ids[1] == uid) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vmm %d did not switch to uid %d: %w", pid, uid, errdefs.ErrUnavailable)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// setTapOwner lets uid attach to the TAP f (Firecracker opens its TAPs by
// name).
func setTapOwner(f *os.File, uid int) error {
	if err := unix.IoctlSetInt(int(f.Fd()), unix.TUNSETOWNER, uid); err != nil {
		return fmt.Errorf("tap owner: %w", err)
	}
	return nil
}
