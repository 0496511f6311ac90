package initd

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// The entrypoint and exec'd processes run in one memory cgroup whose limit
// leaves headroom for init and the kernel: an application that exhausts
// memory is OOM-killed inside its cgroup (counted in its memory.events)
// instead of driving the whole VM out of memory, where the kernel may find
// nothing killable (init is exempt) and panic.
const appCgroupDir = "/sys/fs/cgroup/app"

// AppMemoryMax returns the app cgroup's memory.max when avail bytes are
// available once init has set up (the kernel, the initramfs and init
// itself already taken): all but an eighth, keeping at least 24 MiB and at
// most 256 MiB outside (half on tiny guests).
func AppMemoryMax(avail uint64) uint64 {
	head := min(max(avail/8, 24<<20), 256<<20)
	if avail <= 2*head {
		return avail / 2
	}
	return avail - head
}

// appCgroup is the entrypoint's cgroup.
type appCgroup struct {
	dir string
	fd  *os.File // for CLONE_INTO_CGROUP
}

// setupAppCgroup creates the app cgroup with its memory limit.
func setupAppCgroup() (*appCgroup, error) {
	if err := os.WriteFile("/sys/fs/cgroup/cgroup.subtree_control", []byte("+memory"), 0); err != nil {
		return nil, fmt.Errorf("enable the memory controller: %w", err)
	}
	if err := os.Mkdir(appCgroupDir, 0o755); err != nil && !os.IsExist(err) {
		return nil, err
	}
	avail, err := memAvailable()
	if err != nil {
		return nil, err
	}
	limit := AppMemoryMax(avail)
	if err := os.WriteFile(appCgroupDir+"/memory.max", []byte(strconv.FormatUint(limit, 10)), 0); err != nil {
		return nil, fmt.Errorf("memory.max: %w", err)
	}
	fd, err := os.Open(appCgroupDir)
	if err != nil {
		return nil, err
	}
	return &appCgroup{dir: appCgroupDir, fd: fd}, nil
}

// oomKills returns the cgroup's oom_kill count (-1 when unreadable).
func (c *appCgroup) oomKills() int64 {
	if c == nil {
		return -1
	}
	b, err := os.ReadFile(c.dir + "/memory.events")
	if err != nil {
		return -1
	}
	return counter(b, "oom_kill")
}

// counter returns the value of a "name value" line in b, or -1.
func counter(b []byte, name string) int64 {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == name {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// memAvailable reads MemAvailable from /proc/meminfo, in bytes.
func memAvailable() (uint64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemAvailable:" {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no MemAvailable in /proc/meminfo")
}

// oomKills reads the kernel's count of OOM kills (-1 when unreadable).
func oomKills() int64 {
	b, err := os.ReadFile("/proc/vmstat")
	if err != nil {
		return -1
	}
	return counter(b, "oom_kill")
}
