package initd

import (
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/guest"
)

// Mount is one mount init makes: a value that prints as a mount table line.
type Mount struct {
	Source string
	Target string
	FSType string
	Flags  uintptr
	Data   string
	// Mode creates Target with this mode when it is missing (0: 0755).
	Mode os.FileMode
	// IfMissing skips the mount when Target already exists (e.g. /tmp).
	IfMissing bool
	// Optional failures are logged, not fatal (cgroup2 on a kernel without it).
	Optional bool
}

func (m Mount) String() string {
	opts := flagNames(m.Flags)
	if m.Data != "" {
		opts = append(opts, m.Data)
	}
	s := fmt.Sprintf("%s on %s type %s", m.Source, m.Target, m.FSType)
	if len(opts) > 0 {
		s += " (" + strings.Join(opts, ",") + ")"
	}
	return s
}

func flagNames(f uintptr) []string {
	var out []string
	for _, n := range []struct {
		f    uintptr
		name string
	}{
		{unix.MS_RDONLY, "ro"}, {unix.MS_NOSUID, "nosuid"}, {unix.MS_NODEV, "nodev"},
		{unix.MS_NOEXEC, "noexec"}, {unix.MS_NOATIME, "noatime"}, {unix.MS_RELATIME, "relatime"},
		{unix.MS_MOVE, "move"}, {unix.MS_BIND, "bind"},
	} {
		if f&n.f != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

// Mounter performs mounts; the real one calls mount(2).
type Mounter interface {
	Mount(m Mount) error
}

// EarlyMounts are made in the initramfs, before the root exists: what
// finding devices and the control channel needs. They move into the new
// root with it.
func EarlyMounts() []Mount {
	return []Mount{
		{Source: "proc", Target: "/proc", FSType: "proc", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{Source: "sysfs", Target: "/sys", FSType: "sysfs", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{Source: "devtmpfs", Target: "/dev", FSType: "devtmpfs", Flags: unix.MS_NOSUID, Data: "mode=0755"},
	}
}

// Where the root is assembled inside the initramfs.
const (
	stageDir   = "/ferry"
	baseDir    = stageDir + "/base"
	scratchDir = stageDir + "/scratch"
	newRoot    = stageDir + "/root"
)

// ScratchState is what init found on the scratch device.
type ScratchState int

const (
	ScratchNone  ScratchState = iota // no scratch device configured: tmpfs upper
	ScratchExt4                      // formatted (by the host, or by init on a first boot): mount it
	ScratchBlank                     // no file system yet: init formats it (formatBlank), then ScratchExt4
)

// RootMounts returns the mounts that assemble the root at newRoot.
func RootMounts(r guest.Root, scratch ScratchState) []Mount {
	fstype := r.FSType
	if fstype == "" {
		fstype = "ext4"
	}
	if r.Mode == guest.RootSingle {
		return []Mount{{Source: r.Device, Target: newRoot, FSType: fstype, Flags: unix.MS_RELATIME}}
	}
	ms := []Mount{{Source: r.Device, Target: baseDir, FSType: fstype, Flags: unix.MS_RDONLY}}
	if scratch == ScratchExt4 {
		st := r.ScratchFSType
		if st == "" {
			st = "ext4"
		}
		m := Mount{Source: r.Scratch, Target: scratchDir, FSType: st, Flags: unix.MS_RELATIME}
		if st == "ext4" {
			// Scratch disks are formatted lazily (sparse, ~0 bytes, by the
			// host or by mkext4); don't zero their inode tables in the
			// background while the app boots.
			m.Data = "noinit_itable"
		}
		ms = append(ms, m)
	} else {
		ms = append(ms, Mount{Source: "tmpfs", Target: scratchDir, FSType: "tmpfs", Data: "mode=0755"})
	}
	return append(ms, Mount{Source: "overlay", Target: newRoot, FSType: "overlay",
		Data: "lowerdir=" + baseDir + ",upperdir=" + scratchDir + "/" + guest.ScratchUpper + ",workdir=" + scratchDir + "/" + guest.ScratchWork})
}

// LateMounts are made inside the new root, after the switch; the cgroup
// layout's mounts (CgroupMounts) come last.
func LateMounts(cg CgroupLayout) []Mount {
	ms := []Mount{
		{Source: "devpts", Target: "/dev/pts", FSType: "devpts", Flags: unix.MS_NOSUID | unix.MS_NOEXEC, Data: "newinstance,ptmxmode=0666,mode=0620,gid=5"},
		{Source: "shm", Target: "/dev/shm", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=1777"},
		{Source: "mqueue", Target: "/dev/mqueue", FSType: "mqueue", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, Optional: true},
		{Source: "tmpfs", Target: "/run", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=0755"},
		{Source: "tmpfs", Target: "/tmp", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=1777", Mode: 0o1777, IfMissing: true},
	}
	return append(ms, cg.Mounts...)
}

// VolumeMounts turns the config's extra mounts into mount values.
func VolumeMounts(cfg *guest.RunConfig) []Mount {
	var ms []Mount
	for _, v := range cfg.Mounts {
		m := Mount{Source: v.Source, Target: path.Clean(v.Target), FSType: v.FSType, Data: strings.Join(v.Options, ",")}
		if m.FSType == "" {
			m.FSType = "ext4"
			if v.Source == "tmpfs" {
				m.FSType = "tmpfs"
			}
		}
		if v.ReadOnly {
			m.Flags |= unix.MS_RDONLY
		}
		if v.Format && m.FSType == "ext4" && m.Data == "" {
			// Formatted lazily by init (mkext4), like scratch disks.
			m.Data = "noinit_itable"
		}
		ms = append(ms, m)
	}
	return ms
}

// DevLinks are the symlinks /dev needs beside devtmpfs.
var DevLinks = [][2]string{
	{"/proc/self/fd", "/dev/fd"},
	{"/proc/self/fd/0", "/dev/stdin"},
	{"/proc/self/fd/1", "/dev/stdout"},
	{"/proc/self/fd/2", "/dev/stderr"},
	{"/proc/kcore", "/dev/core"},
}

// sysMounter is the real Mounter.
type sysMounter struct{}

func (sysMounter) Mount(m Mount) error {
	if m.IfMissing {
		if _, err := os.Lstat(m.Target); err == nil {
			return nil
		}
	}
	mode := m.Mode
	if mode == 0 {
		mode = 0o755
	}
	if err := os.MkdirAll(m.Target, mode); err != nil {
		return fmt.Errorf("mount %s: %w", m, err)
	}
	if err := unix.Mount(m.Source, m.Target, m.FSType, m.Flags, m.Data); err != nil {
		return fmt.Errorf("mount %s: %w", m, err)
	}
	return nil
}

// mountAll applies ms in order; optional failures are only logged.
func mountAll(mnt Mounter, log *Logger, ms []Mount) error {
	for _, m := range ms {
		if err := mnt.Mount(m); err != nil {
			if m.Optional {
				log.Infof("skipped: %v", err)
				continue
			}
			return err
		}
		log.Infof("mounted %s", m)
	}
	return nil
}
