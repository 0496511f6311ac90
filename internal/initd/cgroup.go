package initd

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/ferryvm/ferry/internal/guest"
)

// The entrypoint and exec'd processes run in one memory cgroup whose limit
// leaves headroom for init and the kernel: an application that exhausts
// memory is OOM-killed inside its cgroup (counted in its memory.events)
// instead of driving the whole VM out of memory, where the kernel may find
// nothing killable (init is exempt) and panic.
const appCgroupDir = cgroupRoot + "/app"

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
	dir    string
	events string   // the file with the oom_kill counter
	fd     *os.File // v2: for CLONE_INTO_CGROUP; nil for v1

	// v1 has no CLONE_INTO_CGROUP: init joins the cgroup around each
	// fork (the child inherits it) and returns to the root at once.
	mu        sync.Mutex
	rootProcs string
	log       *Logger
}

// setupAppCgroup creates the app cgroup with its memory limit, in the
// unified hierarchy (v2) or in the v1 memory hierarchy (v1, hybrid).
func setupAppCgroup(version string, log *Logger) (*appCgroup, error) {
	avail, err := memAvailable()
	if err != nil {
		return nil, err
	}
	limit := strconv.FormatUint(AppMemoryMax(avail), 10)
	if version == guest.CgroupV1 || version == guest.CgroupHybrid {
		mem := cgroupRoot + "/memory"
		c := &appCgroup{dir: mem + "/app", events: mem + "/app/memory.oom_control", rootProcs: mem + "/cgroup.procs", log: log}
		if err := os.Mkdir(c.dir, 0o755); err != nil && !os.IsExist(err) {
			return nil, err
		}
		if err := os.WriteFile(c.dir+"/memory.limit_in_bytes", []byte(limit), 0); err != nil {
			return nil, fmt.Errorf("memory.limit_in_bytes: %w", err)
		}
		return c, nil
	}
	if err := os.WriteFile(cgroupRoot+"/cgroup.subtree_control", []byte("+memory"), 0); err != nil {
		return nil, fmt.Errorf("enable the memory controller: %w", err)
	}
	if err := os.Mkdir(appCgroupDir, 0o755); err != nil && !os.IsExist(err) {
		return nil, err
	}
	if err := os.WriteFile(appCgroupDir+"/memory.max", []byte(limit), 0); err != nil {
		return nil, fmt.Errorf("memory.max: %w", err)
	}
	fd, err := os.Open(appCgroupDir)
	if err != nil {
		return nil, err
	}
	return &appCgroup{dir: appCgroupDir, events: appCgroupDir + "/memory.events", fd: fd}, nil
}

// fork runs fork so that the child starts in the cgroup: with
// CLONE_INTO_CGROUP (set up by the caller through fd) on v2, by moving init
// in and out around it on v1. Memory init allocates meanwhile stays
// charged to the app cgroup (v1 moves no charges): a few pages.
func (c *appCgroup) fork(fork func() (int, error)) (int, error) {
	if c == nil || c.fd != nil {
		return fork()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	self := []byte(strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(c.dir+"/cgroup.procs", self, 0); err != nil {
		return 0, fmt.Errorf("join %s: %w", c.dir, err)
	}
	pid, err := fork()
	if werr := os.WriteFile(c.rootProcs, self, 0); werr != nil {
		// init stays in the app cgroup; exempt from the OOM killer, it
		// only shares the limit.
		c.log.Must(fmt.Sprintf("warning: leave %s: %v", c.dir, werr))
	}
	return pid, err
}

// oomKills returns the cgroup's oom_kill count (-1 when unreadable).
func (c *appCgroup) oomKills() int64 {
	if c == nil {
		return -1
	}
	b, err := os.ReadFile(c.events)
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
