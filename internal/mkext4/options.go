package mkext4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// ErrInvalid is wrapped by every error Format returns for input it cannot
// use: a size out of range or an option out of range.
var ErrInvalid = errors.New("invalid argument")

const (
	// MinSize is the smallest device Format accepts: 16 MiB, enough for
	// the smallest journal mke2fs makes (1024 blocks) with room to spare.
	MinSize = 16 << 20
	// MaxSize is the largest device Format accepts: 2^32 blocks of 4 KiB.
	MaxSize = 16 << 40

	// DefaultInodeRatio is mke2fs's bytes-per-inode for the "default"
	// usage type.
	DefaultInodeRatio = 16384
	minInodeRatio     = 4096
	maxInodeRatio     = 64 << 20

	minJournalBlocks = 1024
	maxJournalBlocks = 10240000
)

// Options tunes Format. The zero value gives what mkfs.ext4 would.
type Options struct {
	// Label is the volume label, at most 16 bytes.
	Label string
	// UUID is the filesystem UUID. Zero: a random (version 4) one.
	UUID [16]byte
	// JournalBlocks is the size of the journal in 4 KiB blocks. Zero: what
	// mke2fs picks for the filesystem's size (4 MiB to 1 GiB). Negative:
	// no journal. Otherwise between 1024 and 10240000, and at most half
	// the free blocks.
	JournalBlocks int
	// InodeRatio is the number of bytes of disk per inode, between 4096
	// and 64 MiB. Zero: DefaultInodeRatio.
	InodeRatio int
	// Now stamps the superblock and the inodes. Zero: time.Now().
	Now time.Time
	// Resizable writes classic backups of the superblock and group
	// descriptors (sparse_super: groups 1 and the powers of 3, 5 and 7)
	// instead of none (sparse_super2), so that Linux can grow the mounted
	// filesystem (EXT4_IOC_RESIZE_FS, what resize2fs does online), which
	// it refuses with sparse_super2. What mkfs.ext4 -O ^resize_inode
	// writes; growing past the descriptor blocks there are converts the
	// filesystem to meta_bg. Volumes use it; scratch disks never grow.
	Resizable bool
}

// settings are Options with the defaults filled in and the values checked.
type settings struct {
	label      [16]byte
	uuid       [16]byte
	hashSeed   [16]byte
	journal    int // 0: mke2fs's default; -1: none
	inodeRatio uint64
	now        time.Time
	resizable  bool
}

// resolve checks o and fills in its defaults.
func (o Options) resolve() (settings, error) {
	s := settings{journal: o.JournalBlocks, now: o.Now, resizable: o.Resizable}
	if len(o.Label) > len(s.label) {
		return s, fmt.Errorf("label %q is %d bytes, more than %d: %w", o.Label, len(o.Label), len(s.label), ErrInvalid)
	}
	copy(s.label[:], o.Label)
	switch r := o.InodeRatio; {
	case r == 0:
		s.inodeRatio = DefaultInodeRatio
	case r < minInodeRatio || r > maxInodeRatio:
		return s, fmt.Errorf("inode ratio %d outside [%d, %d]: %w", r, minInodeRatio, maxInodeRatio, ErrInvalid)
	default:
		s.inodeRatio = uint64(r)
	}
	switch j := o.JournalBlocks; {
	case j < 0:
		s.journal = -1
	case j > 0 && (j < minJournalBlocks || j > maxJournalBlocks):
		return s, fmt.Errorf("journal of %d blocks outside [%d, %d]: %w", j, minJournalBlocks, maxJournalBlocks, ErrInvalid)
	}
	if s.now.IsZero() {
		s.now = time.Now()
	}
	s.uuid = o.UUID
	if s.uuid == ([16]byte{}) {
		var err error
		if s.uuid, err = randomUUID(); err != nil {
			return s, err
		}
	}
	var err error
	if s.hashSeed, err = randomUUID(); err != nil {
		return s, err
	}
	return s, nil
}

// randomUUID returns a random RFC 4122 version 4 UUID, from math/rand/v2's
// ChaCha8 generator (seeded by the runtime from the kernel's AT_RANDOM):
// unlike crypto/rand it never waits for the entropy pool, which a guest
// early in its boot may not have filled, and a filesystem UUID needs
// uniqueness, not secrecy.
func randomUUID() ([16]byte, error) {
	var u [16]byte
	// G404: uniqueness, not secrecy (see above); ChaCha8 seeded by the runtime.
	binary.LittleEndian.PutUint64(u[:8], rand.Uint64()) //nolint:gosec // G404: see above
	binary.LittleEndian.PutUint64(u[8:], rand.Uint64()) //nolint:gosec // G404: see above
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u, nil
}
