package initd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/guest"
)

// Rehearsal (guest.Rehearser, docs/warm-starts.md): a spare is a restored
// guest that waits for a machine to claim it. Under TCG its VMM starts
// with an empty translation cache, so every kernel and init path a start
// takes would be translated while the machine starts; a spare has time
// before that. Asked to rehearse, init runs the start's paths that need no
// machine — ext4 mounts of the spare's placeholder disks, an overlay on
// them and a bind mount, netlink (the links, a
// NIC's MAC set to itself, an address and a route on lo, added and
// removed), a user lookup, and a fork and exec of init itself — and
// leaves nothing of them behind.

// rehearsalDir is where a rehearsal mounts (in the initramfs, removed).
const rehearsalDir = stageDir + "/rehearse"

// Rehearse implements guest.Rehearser: only while init waits for a warm
// config; the config step waits for a rehearsal in progress to end.
func (s *supervisor) Rehearse() error {
	s.mu.Lock()
	if s.state != guest.StateWaiting || s.warmTaken {
		st := s.state
		s.mu.Unlock()
		return &guest.Failure{Reason: guest.ReasonConfig, Message: "rehearse: init is not waiting for a warm config (state " + st + ")"}
	}
	s.rehearsing.Lock()
	s.mu.Unlock()
	defer s.rehearsing.Unlock()
	t := time.Now()
	if err := s.in.rehearse(); err != nil {
		return fmt.Errorf("rehearse: %w", err)
	}
	s.in.log.Infof("rehearsed a start in %v", time.Since(t))
	return nil
}

func (in *Init) rehearse() error {
	return errors.Join(rehearseMounts(in.mnt), rehearseNetlink(), rehearseUser(), in.rehearseExec())
}

// rehearseMounts mounts a tmpfs and in it the root a start assembles: an
// overlay whose lower and upper are the ext4 file systems of the first two
// virtio disks when they hold some (a spare's placeholders, which the
// daemon formats; directories of the tmpfs otherwise), and a bind mount of
// one file over another; then it unmounts and removes all, and drops the
// disks' cached blocks (BLKFLSBUF), so nothing of the placeholders is left
// for the disks a claim puts in their place.
func rehearseMounts(mnt Mounter) (err error) {
	d := rehearsalDir
	if err := mnt.Mount(Mount{Source: "tmpfs", Target: d, FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=0700"}); err != nil {
		return err
	}
	defer func() {
		err = errors.Join(err, unix.Unmount(d, unix.MNT_DETACH), os.Remove(d))
	}()
	lower, upper := filepath.Join(d, "lower"), d
	if base, scratch, ok := placeholderDisks(); ok {
		lower, upper = filepath.Join(d, "base"), filepath.Join(d, "scratch")
		if err := mnt.Mount(Mount{Source: "/dev/" + base, Target: lower, FSType: "ext4", Flags: unix.MS_RDONLY}); err != nil {
			return err
		}
		defer func() { err = errors.Join(err, unix.Unmount(lower, 0), sysBlock{}.Flush(base)) }()
		if err := mnt.Mount(Mount{Source: "/dev/" + scratch, Target: upper, FSType: "ext4", Flags: unix.MS_RELATIME, Data: "noinit_itable"}); err != nil {
			return err
		}
		defer func() { err = errors.Join(err, unix.Unmount(upper, 0), sysBlock{}.Flush(scratch)) }()
	} else if err := os.Mkdir(lower, 0o700); err != nil {
		return err
	}
	for _, sub := range []string{"upper", "work"} {
		if err := os.Mkdir(filepath.Join(upper, sub), 0o700); err != nil {
			return err
		}
	}
	merged := filepath.Join(d, "merged")
	if err := mnt.Mount(Mount{Source: "overlay", Target: merged, FSType: "overlay",
		Data: "lowerdir=" + lower + ",upperdir=" + upper + "/upper,workdir=" + upper + "/work"}); err != nil {
		return err
	}
	werr := os.WriteFile(filepath.Join(merged, "f"), []byte("f\n"), 0o600)
	if err := errors.Join(werr, unix.Unmount(merged, 0)); err != nil {
		return err
	}
	src, dst := filepath.Join(d, "a"), filepath.Join(d, "b")
	if err := errors.Join(os.WriteFile(src, nil, 0o600), os.WriteFile(dst, nil, 0o600)); err != nil {
		return err
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return err
	}
	return unix.Unmount(dst, 0)
}

// rehearseNetlink lists the links, sets the template NIC's MAC to itself,
// sets lo up (as the network step will) and adds and removes an address
// and a route on it.
func rehearseNetlink() error {
	links := netlinkMACs{}
	have, err := links.MACs()
	if err != nil {
		return err
	}
	if name, ok := have[guest.TemplateMAC(0)]; ok {
		if err := links.SetMAC(name, guest.TemplateMAC(0)); err != nil {
			return fmt.Errorf("%s: set MAC: %w", name, err)
		}
	}
	if err := loopbackUp(); err != nil { // as the network step does first
		return fmt.Errorf("loopback up: %w", err)
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(127, 77, 0, 1), Mask: net.CIDRMask(16, 32)}}
	if err := netlink.AddrAdd(lo, addr); err != nil {
		return fmt.Errorf("lo address: %w", err)
	}
	// TEST-NET-1: no network of ferry's is there.
	route := &netlink.Route{LinkIndex: lo.Attrs().Index, Dst: &net.IPNet{IP: net.IPv4(192, 0, 2, 0).To4(), Mask: net.CIDRMask(24, 32)}}
	rerr := netlink.RouteAdd(route)
	if rerr == nil {
		rerr = netlink.RouteDel(route)
	}
	return errors.Join(rerr, netlink.AddrDel(lo, addr))
}

// rehearseUser resolves a user as the user step does.
func rehearseUser() error {
	_, err := ResolveUser("ferry", []byte("root:x:0:0:root:/root:/bin/sh\nferry:x:1000:1000::/home/ferry:/bin/sh\n"), []byte("root:x:0:\nferry:x:1000:\n"))
	return err
}

// rehearseExec forks and execs init as a process that exits at once
// (guest.RehearseHelperArg), through the reaper as the entrypoint is.
func (in *Init) rehearseExec() error {
	null, err := os.OpenFile("/dev/null", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer null.Close()
	fd := null.Fd()
	attr := &syscall.ProcAttr{Files: []uintptr{fd, fd, fd}, Sys: &syscall.SysProcAttr{Setsid: true}}
	_, ch, err := in.reaper.Start(func() (int, error) {
		return syscall.ForkExec(guest.BuildHelper, []string{guest.BuildHelper, guest.RehearseHelperArg}, attr)
	})
	if err != nil {
		return err
	}
	if ws := <-ch; ws.ExitStatus() != 0 {
		return fmt.Errorf("exec: init exited %d", ws.ExitStatus())
	}
	return nil
}

// placeholderDisks are vda and vdb when vda is read-only and both hold an
// ext4 file system (a spare's placeholders).
func placeholderDisks() (base, scratch string, ok bool) {
	for _, disk := range []string{"vda", "vdb"} {
		if !isExt4("/dev/" + disk) {
			return "", "", false
		}
	}
	ro, err := os.ReadFile("/sys/block/vda/ro")
	return "vda", "vdb", err == nil && strings.TrimSpace(string(ro)) == "1"
}

// isExt4 reports whether dev holds an ext4 superblock (its magic, 0xEF53,
// at byte 1080).
func isExt4(dev string) bool {
	f, err := os.Open(dev)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, 2)
	_, err = f.ReadAt(b, 1080)
	return err == nil && b[0] == 0x53 && b[1] == 0xef
}
