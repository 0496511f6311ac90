package initd

import (
	"bufio"
	"bytes"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/guest"
)

// cgroupRoot is where every cgroup layout is mounted.
const cgroupRoot = "/sys/fs/cgroup"

// ParseControllers returns the enabled v1 controllers listed in
// /proc/cgroups ("#subsys_name hierarchy num_cgroups enabled" lines), in
// the kernel's order.
func ParseControllers(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 || strings.HasPrefix(f[0], "#") || f[3] != "1" {
			continue
		}
		out = append(out, f[0])
	}
	return out
}

// cgroupPairs are the controllers that cgroup-v1 systems (systemd, Docker)
// mount as one hierarchy, each name also linked to the joint directory.
var cgroupPairs = [][2]string{{"cpu", "cpuacct"}, {"net_cls", "net_prio"}}

// CgroupLayout is what one cgroup layout mounts, in order, and the
// symlinks it needs ([target, link] pairs, as DevLinks).
type CgroupLayout struct {
	Mounts []Mount
	Links  [][2]string
}

// CgroupMounts returns the layout version needs given the kernel's v1
// controllers (ParseControllers): cgroup2 alone for v2 (the default), else
// a tmpfs with one v1 hierarchy per controller (cpu,cpuacct and
// net_cls,net_prio joint), the named systemd hierarchy, and for hybrid
// cgroup2 on unified/.
func CgroupMounts(version string, controllers []string) CgroupLayout {
	const flags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if version == "" || version == guest.CgroupV2 {
		return CgroupLayout{Mounts: []Mount{{Source: "cgroup2", Target: cgroupRoot, FSType: "cgroup2", Flags: flags, Optional: true}}}
	}
	var l CgroupLayout
	l.Mounts = append(l.Mounts, Mount{Source: "tmpfs", Target: cgroupRoot, FSType: "tmpfs", Flags: flags, Data: "mode=0755"})
	have := map[string]bool{}
	for _, c := range controllers {
		have[c] = true
	}
	joint := map[string]string{}
	for _, p := range cgroupPairs {
		if have[p[0]] && have[p[1]] {
			j := p[0] + "," + p[1]
			joint[p[0]], joint[p[1]] = j, j
			l.Links = append(l.Links, [2]string{j, path.Join(cgroupRoot, p[0])}, [2]string{j, path.Join(cgroupRoot, p[1])})
		}
	}
	done := map[string]bool{}
	for _, c := range controllers {
		name := c
		if j, ok := joint[c]; ok {
			name = j
		}
		if done[name] {
			continue
		}
		done[name] = true
		l.Mounts = append(l.Mounts, Mount{Source: "cgroup", Target: path.Join(cgroupRoot, name), FSType: "cgroup", Flags: flags, Data: name})
	}
	l.Mounts = append(l.Mounts, Mount{Source: "cgroup", Target: cgroupRoot + "/systemd", FSType: "cgroup", Flags: flags, Data: "none,name=systemd"})
	if version == guest.CgroupHybrid {
		l.Mounts = append(l.Mounts, Mount{Source: "cgroup2", Target: cgroupRoot + "/unified", FSType: "cgroup2", Flags: flags})
	}
	return l
}
