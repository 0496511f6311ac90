package inittest

import (
	"strconv"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/guest"
)

// TestBootCgroupHybrid: with cgroup_version hybrid the guest has the v1
// hierarchies (cpu,cpuacct joint and linked, memory, pids, the named
// systemd one) on a tmpfs and cgroup2 on unified/; the entrypoint starts in
// the v1 memory cgroup with its limit, and exhausting it is a memory-cgroup
// OOM reported as oom_killed although the killed process (awk) is the
// entrypoint script's child (Docker's OOMKilled semantics).
func TestBootCgroupHybrid(t *testing.T) {
	t.Parallel()
	e := Setup(t)
	script := `#!/bin/sh
echo "fs: $(grep -E ' /sys/fs/cgroup(/unified|/memory|/systemd|/cpu,cpuacct|) ' /proc/mounts | cut -d' ' -f2,3 | tr '\n' ' ')"
echo "links: $(readlink /sys/fs/cgroup/cpu) $(readlink /sys/fs/cgroup/cpuacct)"
echo "self: $(grep -E ':memory:|:pids:' /proc/self/cgroup | cut -d: -f2,3 | tr '\n' ' ')"
echo "limit: $(cat /sys/fs/cgroup/memory/app/memory.limit_in_bytes)"
awk 'BEGIN { s = "x"; while (1) s = s s }'
`
	base := e.Rootfs(t, map[string]string{"/entry.sh": script})
	cfg := baseConfig("/entry.sh")
	cfg.Root = guest.Root{Mode: guest.RootSingle, Device: "/dev/vda"}
	cfg.CgroupVersion = guest.CgroupHybrid
	b := e.Start(t, cfg, Disks{Base: base}, Options{MemoryMB: 128})
	res, err := b.Wait()
	if err != nil {
		t.Fatalf("qemu: %v\n%s", err, res.Console)
	}
	for _, want := range []string{
		"/sys/fs/cgroup tmpfs", "/sys/fs/cgroup/cpu,cpuacct cgroup", "/sys/fs/cgroup/memory cgroup",
		"/sys/fs/cgroup/systemd cgroup", "/sys/fs/cgroup/unified cgroup2",
		"links: cpu,cpuacct cpu,cpuacct",
		"memory:/app ", // /proc/self/cgroup, in hierarchy order
		"pids:/ ",
	} {
		if !strings.Contains(res.Console, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	// The limit leaves init and the kernel their headroom: below the
	// guest's 128 MiB, above half of it.
	var limit int64
	for _, l := range strings.Split(res.Console, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "limit: "); ok {
			limit, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if limit <= 48<<20 || limit >= 128<<20 {
		t.Errorf("memory.limit_in_bytes = %d, want between 48 and 128 MiB", limit)
	}
	ex, ok := ConsoleExit(res.Console)
	if !ok || !ex.OOMKilled || ex.Code != 137 {
		t.Errorf("exit %+v (found %v), want oom_killed 137", ex, ok)
	}
	if !strings.Contains(res.Console, "Memory cgroup out of memory") {
		t.Errorf("not a memory-cgroup OOM")
	}
	if t.Failed() {
		t.Logf("console:\n%s", res.Console)
	}
}
