package initd

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/luks2"
	"github.com/ferryvm/ferry/internal/mkext4"
)

// Block volumes: a device (virtio-blk), optionally a LUKS2 container that
// init opens with dm-crypt, holding ext4 that init makes when the volume is
// new and grows when the device has grown.

// ext4IocResizeFS is EXT4_IOC_RESIZE_FS, _IOW('f', 16, __u64): grow a
// mounted ext4 to the given block count (what resize2fs does online).
const ext4IocResizeFS = 1<<30 | 8<<16 | 'f'<<8 | 16

// volumeFailure is a mount failure naming the volume.
func volumeFailure(m guest.Mount, format string, a ...any) *guest.Failure {
	name := m.Name
	if name == "" {
		name = m.Source
	}
	return &guest.Failure{Reason: guest.ReasonMount, Message: fmt.Sprintf("volume %s at %s: %s", name, m.Target, fmt.Sprintf(format, a...))}
}

// prepareVolume waits for a volume's device, opens its encryption and
// formats it when it is new; it returns the device to mount.
func prepareVolume(i int, v guest.Mount, log *Logger) (string, error) {
	if err := waitDevice(v.Source, 2*time.Second); err != nil {
		return "", volumeFailure(v, "%s did not appear", v.Source)
	}
	dev := v.Source
	blank := false
	if v.Encryption != nil {
		var err error
		if dev, blank, err = openLUKS(i, v, log); err != nil {
			return "", err
		}
	} else if v.Format {
		f, err := os.Open(dev)
		if err != nil {
			return "", volumeFailure(v, "%v", err)
		}
		st, perr := ProbeScratch(f)
		f.Close()
		if perr != nil {
			return "", volumeFailure(v, "the device holds neither ext4 nor zeros (corrupt, or not a ferry volume); nothing was written")
		}
		blank = st == ScratchBlank
	}
	if blank {
		if !v.Format || v.ReadOnly {
			return "", volumeFailure(v, "the volume is empty and attached read-only: mount it read-write once to create its filesystem")
		}
		if err := formatVolume(dev, v, log); err != nil {
			return "", err
		}
	}
	return dev, nil
}

// openLUKS unlocks the LUKS2 header on v.Source with the volume's key and
// maps it with dm-crypt. blank is true when the encrypted area has never
// been written: its first sector is still zeros on the device, which a
// sector of ciphertext practically never is.
func openLUKS(i int, v guest.Mount, log *Logger) (dev string, blank bool, err error) {
	t := time.Now()
	key, err := base64.StdEncoding.DecodeString(v.Encryption.Key)
	if err != nil {
		return "", false, volumeFailure(v, "bad key encoding")
	}
	f, err := os.Open(v.Source)
	if err != nil {
		return "", false, volumeFailure(v, "%v", err)
	}
	defer f.Close()
	h, err := luks2.ReadHeader(f)
	switch {
	case errors.Is(err, luks2.ErrNotLUKS):
		return "", false, volumeFailure(v, "no LUKS2 header on %s (the volume is not encrypted, or its header was overwritten); nothing was written", v.Source)
	case err != nil:
		return "", false, volumeFailure(v, "%v; nothing was written", err)
	}
	vol, err := h.Unlock(f, key)
	clear(key)
	switch {
	case errors.Is(err, luks2.ErrWrongKey):
		return "", false, volumeFailure(v, "the key does not open its LUKS2 header (wrong key); nothing was written")
	case err != nil:
		return "", false, volumeFailure(v, "unlock: %v; nothing was written", err)
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return "", false, volumeFailure(v, "size: %v", err)
	}
	params, sectors, err := vol.Table(v.Source, size)
	clear(vol.Key)
	if err != nil {
		return "", false, volumeFailure(v, "%v", err)
	}
	first := make([]byte, vol.SectorSize)
	if _, err := f.ReadAt(first, vol.Offset); err != nil {
		return "", false, volumeFailure(v, "read: %v", err)
	}
	blank = bytes.Count(first, []byte{0}) == len(first)
	name := fmt.Sprintf("ferry-vol%d", i)
	dev, err = dmCreate(name, v.ReadOnly, []dmTarget{{Start: 0, Length: sectors, Type: "crypt", Params: params}})
	if err != nil {
		return "", false, volumeFailure(v, "dm-crypt: %v", err)
	}
	log.Infof("opened LUKS2 volume %s (keyslot %s, %s, %d-byte sectors) as %s in %v", v.Source, vol.Keyslot, vol.Cipher, vol.SectorSize, dev, time.Since(t).Round(time.Microsecond))
	return dev, blank, nil
}

// formatVolume makes ext4 on a new volume.
func formatVolume(dev string, v guest.Mount, log *Logger) error {
	t := time.Now()
	f, err := os.OpenFile(dev, os.O_RDWR|unix.O_EXCL, 0)
	if err != nil {
		return volumeFailure(v, "open for formatting: %v", err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return volumeFailure(v, "size: %v", err)
	}
	label := v.Name
	if len(label) > 16 {
		label = label[:16]
	}
	if err := mkext4.Format(f, size, mkext4.Options{Label: label, Resizable: true}); err != nil {
		return volumeFailure(v, "format ext4: %v", err)
	}
	if err := f.Sync(); err != nil {
		return volumeFailure(v, "format ext4: sync: %v", err)
	}
	log.Noticef("formatted new volume %s (%d MiB, ext4) in %v", v.Name, size>>20, time.Since(t).Round(time.Microsecond))
	return nil
}

// ext4Size reads the block size and block count of the ext4 on dev.
func ext4Size(dev string) (blockSize, blocks uint64, err error) {
	f, err := os.Open(dev)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, 1024); err != nil {
		return 0, 0, err
	}
	le := binary.LittleEndian
	if le.Uint16(sb[0x38:]) != extMagic {
		return 0, 0, errors.New("no ext4 superblock")
	}
	blockSize = 1024 << le.Uint32(sb[0x18:])
	blocks = uint64(le.Uint32(sb[0x04:]))
	if le.Uint32(sb[0x60:])&0x80 != 0 { // INCOMPAT_64BIT
		blocks |= uint64(le.Uint32(sb[0x150:])) << 32
	}
	return blockSize, blocks, nil
}

// deviceSize is a block device's size in bytes.
func deviceSize(dev string) (int64, error) {
	f, err := os.Open(dev)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.Seek(0, io.SeekEnd)
}

// growVolume grows the ext4 mounted at target to fill dev.
func growVolume(dev, target string, v guest.Mount, log *Logger) error {
	bs, blocks, err := ext4Size(dev)
	if err != nil {
		return volumeFailure(v, "read superblock: %v", err)
	}
	size, err := deviceSize(dev)
	if err != nil {
		return volumeFailure(v, "size: %v", err)
	}
	want := uint64(size) / bs
	if want <= blocks {
		return nil
	}
	t := time.Now()
	d, err := os.Open(target)
	if err != nil {
		return volumeFailure(v, "grow: %v", err)
	}
	defer d.Close()
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, d.Fd(), ext4IocResizeFS, uintptr(unsafe.Pointer(&want))); e != 0 {
		return volumeFailure(v, "grow ext4 from %d to %d blocks: %v", blocks, want, e)
	}
	log.Noticef("grew volume %s from %d MiB to %d MiB in %v", v.Name, blocks*bs>>20, want*bs>>20, time.Since(t).Round(time.Microsecond))
	return nil
}

// mountVolumes mounts the run config's extra mounts in order: block
// volumes (prepared first), virtio-fs shares and tmpfs. Each mounted block
// volume is kept open (O_PATH) so shutdown can remount it read-only.
func (in *Init) mountVolumes() error {
	ms := VolumeMounts(in.cfg)
	for i, v := range in.cfg.Mounts {
		m := ms[i]
		if strings.HasPrefix(v.Source, "/dev/") {
			dev, err := prepareVolume(i, v, in.log)
			if err != nil {
				return err
			}
			m.Source = dev
		}
		if err := in.mnt.Mount(m); err != nil {
			if strings.HasPrefix(v.Source, "/dev/") && m.FSType == "ext4" {
				return volumeFailure(v, "mount ext4: %v (a corrupt filesystem?)", errors.Unwrap(err))
			}
			return volumeFailure(v, "%v", err)
		}
		in.log.Infof("mounted %s", m)
		if !strings.HasPrefix(v.Source, "/dev/") {
			continue
		}
		if v.Grow && !v.ReadOnly {
			if err := growVolume(m.Source, m.Target, v, in.log); err != nil {
				return err
			}
		}
		if !v.ReadOnly {
			if h := openPath(m.Target); h != nil {
				in.volumes = append(in.volumes, h)
			}
		}
	}
	return nil
}

// remountVolumesReadOnly makes the volumes' filesystems clean before
// power-off.
func (in *Init) remountVolumesReadOnly() {
	for i := len(in.volumes) - 1; i >= 0; i-- {
		f := in.volumes[i]
		p := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
		if err := unix.Mount("", p, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			in.log.Must(fmt.Sprintf("warning: remount volume %s read-only: %v", f.Name(), err))
		}
	}
}
