package initd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/mkext4"
)

// ext4 (and ext2/3) superblock magic, 1080 bytes into the device.
const (
	extMagicOffset = 1024 + 0x38
	extMagic       = 0xEF53
)

// ProbeScratch reads the start of a scratch device: a file system (the
// host's format, or init's from an earlier boot), or a blank device (its
// first 4 KiB all zero), which init formats.
func ProbeScratch(r io.ReaderAt) (ScratchState, error) {
	buf := make([]byte, 4096)
	n, err := r.ReadAt(buf, 0)
	if n < extMagicOffset+2 {
		return ScratchBlank, fmt.Errorf("read scratch: %d bytes: %w", n, err)
	}
	if binary.LittleEndian.Uint16(buf[extMagicOffset:]) == extMagic {
		return ScratchExt4, nil
	}
	if bytes.Count(buf[:n], []byte{0}) == n {
		return ScratchBlank, nil
	}
	return ScratchBlank, &guest.Failure{Reason: guest.ReasonScratchCorrupt, Message: "scratch device holds neither ext4 nor zeros"}
}

// waitDevice waits for a block device node to appear (virtio probing, or
// modules loaded just before).
func waitDevice(dev string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if fi, err := os.Stat(dev); err == nil && fi.Mode()&os.ModeDevice != 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return &guest.Failure{Reason: guest.ReasonRootDevice, Message: fmt.Sprintf("%s did not appear within %v", dev, d)}
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// rootHandles keeps the disks mounted under the initramfs reachable after
// the switch (they are hidden under the new root) so shutdown can remount
// them read-only.
type rootHandles struct {
	scratch *os.File // O_PATH of the scratch mount, nil when none
	base    *os.File
}

// assembleRoot mounts the root at newRoot per r.
func assembleRoot(r guest.Root, mnt Mounter, log *Logger) (*rootHandles, error) {
	wait := time.Duration(r.WaitMS) * time.Millisecond
	if wait == 0 {
		wait = 2 * time.Second
	}
	if err := waitDevice(r.Device, wait); err != nil {
		return nil, err
	}
	state := ScratchNone
	if r.Mode == guest.RootOverlay && r.Scratch != "" {
		if err := waitDevice(r.Scratch, wait); err != nil {
			return nil, err
		}
		f, err := os.Open(r.Scratch)
		if err != nil {
			return nil, &guest.Failure{Reason: guest.ReasonRootDevice, Message: err.Error()}
		}
		state, err = ProbeScratch(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		if state == ScratchBlank {
			if err := formatBlank(r, log); err != nil {
				return nil, err
			}
			state = ScratchExt4
		}
	}
	h := &rootHandles{}
	for _, m := range RootMounts(r, state) {
		if err := mnt.Mount(m); err != nil {
			reason := guest.ReasonMount
			switch m.Source {
			case r.Scratch:
				reason = guest.ReasonScratchCorrupt
			case r.Device:
				reason = guest.ReasonRootDevice
			}
			return nil, &guest.Failure{Reason: reason, Message: err.Error()}
		}
		log.Infof("mounted %s", m)
		if m.Target == scratchDir {
			for _, d := range []string{guest.ScratchUpper, guest.ScratchWork} {
				if err := os.MkdirAll(filepath.Join(scratchDir, d), 0o755); err != nil {
					return nil, &guest.Failure{Reason: guest.ReasonScratchCorrupt, Message: err.Error()}
				}
			}
			if m.FSType != "tmpfs" {
				h.scratch = openPath(scratchDir)
			}
		}
		if m.Target == baseDir {
			h.base = openPath(baseDir)
		}
		if m.Target == newRoot && r.Mode == guest.RootSingle {
			h.scratch = openPath(newRoot)
		}
	}
	return h, nil
}

// formatBlank formats a blank scratch device as ext4 (mkext4: lazily, a
// few KB of writes), so that a host may hand over a plain sparse file; the
// first boot formats it, later boots find the filesystem.
func formatBlank(r guest.Root, log *Logger) error {
	if r.ScratchFSType != "" && r.ScratchFSType != "ext4" {
		return &guest.Failure{Reason: guest.ReasonScratchCorrupt, Message: fmt.Sprintf("scratch %s is blank and init formats only ext4, not %s", r.Scratch, r.ScratchFSType)}
	}
	t := time.Now()
	f, err := os.OpenFile(r.Scratch, os.O_RDWR|unix.O_EXCL, 0)
	if err != nil {
		return &guest.Failure{Reason: guest.ReasonScratchCorrupt, Message: fmt.Sprintf("scratch %s is blank and cannot be opened for formatting: %v", r.Scratch, err)}
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return &guest.Failure{Reason: guest.ReasonScratchCorrupt, Message: fmt.Sprintf("scratch %s: size: %v", r.Scratch, err)}
	}
	// (mkext4's random UUID does not wait for the entropy pool.)
	if err := mkext4.Format(f, size, mkext4.Options{Label: "ferry-scratch"}); err != nil {
		return &guest.Failure{Reason: guest.ReasonScratchCorrupt, Message: fmt.Sprintf("scratch %s is blank and formatting it failed: %v", r.Scratch, err)}
	}
	log.Noticef("formatted blank scratch %s (%d MiB, ext4) in %v", r.Scratch, size>>20, time.Since(t).Round(time.Microsecond))
	return nil
}

func openPath(p string) *os.File {
	fd, err := unix.Open(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	return os.NewFile(uintptr(fd), p)
}

// switchRoot moves the kernel file systems into newRoot and makes it "/"
// (the initramfs cannot be pivot_root'ed away; this is switch_root's way).
func switchRoot() error {
	for _, d := range []string{"/dev", "/proc", "/sys"} {
		t := newRoot + d
		if err := os.MkdirAll(t, 0o755); err != nil {
			return fmt.Errorf("switch root: %w", err)
		}
		if err := unix.Mount(d, t, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("switch root: move %s: %w", d, err)
		}
	}
	if err := unix.Chdir(newRoot); err != nil {
		return fmt.Errorf("switch root: %w", err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("switch root: move to /: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("switch root: chroot: %w", err)
	}
	return unix.Chdir("/")
}

// remountReadOnly makes the disks consistent before power-off: the root
// (overlay or single) and then the scratch file system under it.
func (h *rootHandles) remountReadOnly(log *Logger) {
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil && !errors.Is(err, unix.EINVAL) {
		log.Infof("remount / ro: %v", err)
	}
	for _, f := range []*os.File{h.scratch, h.base} {
		if f == nil {
			continue
		}
		p := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
		if err := unix.Mount("", p, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			log.Must(fmt.Sprintf("warning: remount %s read-only: %v", f.Name(), err))
		}
	}
}
