package initd

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/guest"
)

func TestAppMemoryMax(t *testing.T) {
	const mb = 1 << 20
	for _, tc := range []struct{ total, want uint64 }{
		{100 * mb, 76 * mb},      // 24 MiB kept
		{40 * mb, 20 * mb},       // tiny guest: half
		{1024 * mb, 896 * mb},    // an eighth
		{16384 * mb, 16128 * mb}, // at most 256 MiB kept
	} {
		if got := AppMemoryMax(tc.total); got != tc.want {
			t.Errorf("AppMemoryMax(%d MiB) = %d MiB, want %d MiB", tc.total/mb, got/mb, tc.want/mb)
		}
	}
	if n := counter([]byte("low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\n"), "oom_kill"); n != 1 {
		t.Errorf("counter = %d", n)
	}
}

func TestCgroupMounts(t *testing.T) {
	// /proc/cgroups of the built guest kernel, with one controller disabled.
	procCgroups := []byte(`#subsys_name	hierarchy	num_cgroups	enabled
cpuset	0	1	1
cpu	0	1	1
cpuacct	0	1	1
blkio	0	1	1
memory	0	1	1
devices	0	1	1
freezer	0	1	1
net_cls	0	1	0
pids	0	1	1
`)
	ctrls := ParseControllers(procCgroups)
	if got := strings.Join(ctrls, " "); got != "cpuset cpu cpuacct blkio memory devices freezer pids" {
		t.Fatalf("controllers: %s", got)
	}
	if got := mountTable(CgroupMounts("", ctrls).Mounts); got != "cgroup2 on /sys/fs/cgroup type cgroup2 (nosuid,nodev,noexec)\n" {
		t.Errorf("v2:\n%s", got)
	}
	hybrid := CgroupMounts(guest.CgroupHybrid, ctrls)
	want := `tmpfs on /sys/fs/cgroup type tmpfs (nosuid,nodev,noexec,mode=0755)
cgroup on /sys/fs/cgroup/cpuset type cgroup (nosuid,nodev,noexec,cpuset)
cgroup on /sys/fs/cgroup/cpu,cpuacct type cgroup (nosuid,nodev,noexec,cpu,cpuacct)
cgroup on /sys/fs/cgroup/blkio type cgroup (nosuid,nodev,noexec,blkio)
cgroup on /sys/fs/cgroup/memory type cgroup (nosuid,nodev,noexec,memory)
cgroup on /sys/fs/cgroup/devices type cgroup (nosuid,nodev,noexec,devices)
cgroup on /sys/fs/cgroup/freezer type cgroup (nosuid,nodev,noexec,freezer)
cgroup on /sys/fs/cgroup/pids type cgroup (nosuid,nodev,noexec,pids)
cgroup on /sys/fs/cgroup/systemd type cgroup (nosuid,nodev,noexec,none,name=systemd)
cgroup2 on /sys/fs/cgroup/unified type cgroup2 (nosuid,nodev,noexec)
`
	if got := mountTable(hybrid.Mounts); got != want {
		t.Errorf("hybrid:\n%s\nwant\n%s", got, want)
	}
	// net_cls is disabled, so net_prio (absent too) gets no joint link.
	if fmt.Sprint(hybrid.Links) != "[[cpu,cpuacct /sys/fs/cgroup/cpu] [cpu,cpuacct /sys/fs/cgroup/cpuacct]]" {
		t.Errorf("links: %v", hybrid.Links)
	}
	v1 := mountTable(CgroupMounts(guest.CgroupV1, ctrls).Mounts)
	if strings.Contains(v1, "cgroup2") || !strings.Contains(v1, "/sys/fs/cgroup/memory type cgroup") {
		t.Errorf("v1:\n%s", v1)
	}
	// The late mount table ends with the layout.
	late := LateMounts(CgroupMounts(guest.CgroupV1, ctrls))
	if last := late[len(late)-1]; last.Target != "/sys/fs/cgroup/systemd" {
		t.Errorf("late mounts end with %s", last)
	}
}
