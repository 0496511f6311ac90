package vmm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Cgroup is a VMM's own cgroup: Path (relative, e.g. "ferry/ferry-<id>")
// in the unified hierarchy (cgroup v2), or in each of the memory, pids and
// cpu hierarchies of cgroup v1 (also on a hybrid host, where the unified
// tree has no controllers).
type Cgroup struct {
	Path      string `json:"path"`
	MemoryMax int64  `json:"memory_max"` // bytes: v2 memory.max, v1 memory.limit_in_bytes
	PidsMax   int    `json:"pids_max"`   // tasks (threads included): pids.max
	CPUs      int    `json:"cpus"`       // CPUs' worth of time: v2 cpu.max, v1 cpu.cfs_quota_us
}

// cgroupRoot is where the cgroup file systems are mounted.
var cgroupRoot = "/sys/fs/cgroup"

const cpuPeriod = 100000 // µs

// cgroupDirs is a created cgroup: its directories, and for v2 the open
// directory the VMM is cloned into.
type cgroupDirs struct {
	dirs []string
	v2   *os.File
}

// CgroupV2 reports whether the host runs the unified cgroup hierarchy
// alone.
func CgroupV2() bool {
	var st unix.Statfs_t
	return unix.Statfs(cgroupRoot, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// create makes the cgroup and sets its limits.
func (c *Cgroup) create() (*cgroupDirs, error) {
	if c.Path == "" || filepath.IsAbs(c.Path) || strings.Contains(c.Path, "..") {
		return nil, fmt.Errorf("cgroup path %q: want a relative path", c.Path)
	}
	if CgroupV2() {
		return c.createV2()
	}
	return c.createV1()
}

func (c *Cgroup) createV2() (*cgroupDirs, error) {
	dir := cgroupRoot
	for _, part := range strings.Split(c.Path, "/") {
		// Each ancestor hands the controllers down (systemd's root
		// already enables them; ferry's own parent needs it).
		if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+memory +pids +cpu"), 0o644); err != nil {
			return nil, fmt.Errorf("cgroup %s: enable controllers: %w", dir, err)
		}
		dir = filepath.Join(dir, part)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
	}
	cd := &cgroupDirs{dirs: []string{dir}}
	for file, v := range map[string]string{
		"memory.max":      strconv.FormatInt(c.MemoryMax, 10),
		"memory.swap.max": "0",
		"pids.max":        strconv.Itoa(c.PidsMax),
		"cpu.max":         fmt.Sprintf("%d %d", c.CPUs*cpuPeriod, cpuPeriod),
	} {
		if err := writeLimit(dir, file, v); err != nil {
			cd.remove()
			return nil, err
		}
	}
	f, err := os.Open(dir)
	if err != nil {
		cd.remove()
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	cd.v2 = f
	return cd, nil
}

func (c *Cgroup) createV1() (*cgroupDirs, error) {
	cd := &cgroupDirs{}
	for _, ctl := range []struct {
		name   string
		limits [][2]string
	}{
		{"memory", [][2]string{{"memory.limit_in_bytes", strconv.FormatInt(c.MemoryMax, 10)}}},
		{"pids", [][2]string{{"pids.max", strconv.Itoa(c.PidsMax)}}},
		{"cpu", [][2]string{{"cpu.cfs_period_us", strconv.Itoa(cpuPeriod)}, {"cpu.cfs_quota_us", strconv.Itoa(c.CPUs * cpuPeriod)}}},
	} {
		root := filepath.Join(cgroupRoot, ctl.name)
		if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil {
			cd.remove()
			return nil, fmt.Errorf("cgroup v1 %s hierarchy not mounted at %s: %w", ctl.name, root, err)
		}
		dir := filepath.Join(root, c.Path)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			cd.remove()
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		cd.dirs = append(cd.dirs, dir)
		for _, l := range ctl.limits {
			if err := writeLimit(dir, l[0], l[1]); err != nil {
				cd.remove()
				return nil, err
			}
		}
	}
	return cd, nil
}

func writeLimit(dir, file, v string) error {
	err := os.WriteFile(filepath.Join(dir, file), []byte(v), 0o644)
	if errors.Is(err, os.ErrNotExist) && file == "memory.swap.max" {
		return nil // no swap accounting on this kernel
	}
	if err != nil {
		return fmt.Errorf("cgroup %s: %s=%s: %w", dir, file, v, err)
	}
	return nil
}

// join moves pid into every v1 hierarchy's cgroup (v2 clones it there).
func (cd *cgroupDirs) join(pid int) error {
	if cd.v2 != nil {
		return nil
	}
	for _, d := range cd.dirs {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("cgroup %s: join %d: %w", d, pid, err)
		}
	}
	return nil
}

func (cd *cgroupDirs) closeFD() {
	if cd != nil && cd.v2 != nil {
		_ = cd.v2.Close()
	}
}

func (cd *cgroupDirs) remove() {
	if cd == nil {
		return
	}
	cd.closeFD()
	removeCgroups(cd.dirs)
}

// removeCgroups removes cgroup directories once their processes are gone
// (the kernel may need a moment after the last one exits).
func removeCgroups(dirs []string) {
	for _, d := range dirs {
		for i := 0; i < 50; i++ {
			err := unix.Rmdir(d)
			if err == nil || errors.Is(err, unix.ENOENT) || !errors.Is(err, unix.EBUSY) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
