package ext4

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"github.com/Microsoft/hcsshim/ext4/tar2ext4"

	"github.com/ferryvm/ferry/internal/rootfs/sparse"
)

// Superblock fields this package reads or patches (offsets inside the
// 1024-byte superblock, which starts at byte 1024).
const (
	sbOffset          = 1024
	sbBlocksCountLo   = 0x04
	sbLogBlockSize    = 0x18
	sbBlocksPerGroup  = 0x20
	sbInodesPerGroup  = 0x28
	sbMagic           = 0x38
	sbFeatureIncompat = 0x60
	sbFeatureRoCompat = 0x64
	sbDescSize        = 0xFE
	ext4Magic         = 0xEF53
	roCompatReadonly  = 0x1000
	incompat64bit     = 0x80
	gdInodeBitmapLo   = 0x04
	gdInodeBitmapHi   = 0x24
)

// minMaxDiskSize is the smallest metadata reservation Build asks for.
// The reservation is group descriptor blocks of zeros, which stay holes.
const minMaxDiskSize = 16 << 30

// BuildOption configures Build.
type BuildOption func(*buildOptions)

type buildOptions struct{ minFree int64 }

// WithMinFree makes Build fail rather than leave less than n bytes free
// on out's filesystem.
func WithMinFree(n int64) BuildOption { return func(o *buildOptions) { o.minFree = n } }

// Build writes an ext4 filesystem holding the flattened tar stream r
// (no whiteouts; see apply.Flatten) to out, which must be empty. The
// filesystem is exactly as large as its content and carries the
// read-only feature flag; blocks of zeros (sparse files, files of zeros,
// unused metadata) are holes in out, so out's allocated size follows the
// data. contentHint (the apparent bytes of file data it may hold, 0 if
// unknown) sizes the metadata reservation.
func Build(ctx context.Context, r io.Reader, out *os.File, contentHint int64, opts ...BuildOption) error {
	var o buildOptions
	for _, opt := range opts {
		opt(&o)
	}
	maxSize := int64(minMaxDiskSize)
	if 2*contentHint+(1<<30) > maxSize {
		maxSize = 2*contentHint + (1 << 30)
	}
	w := sparse.NewWriter(out, o.minFree)
	if err := tar2ext4.ConvertTarToExt4(ctxReader{ctx, r}, w, tar2ext4.MaximumDiskSize(maxSize)); err != nil {
		return fmt.Errorf("write ext4: %w", err)
	}
	if err := w.Finish(); err != nil {
		return fmt.Errorf("write ext4: %w", err)
	}
	if err := FixInodeBitmapPadding(out); err != nil {
		return err
	}
	return nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// superblock is the part of an ext4 superblock this package needs.
type superblock struct {
	raw            [1024]byte
	blockSize      int64
	blocks         uint64
	blocksPerGroup uint32
	inodesPerGroup uint32
	descSize       int
}

func readSuperblock(f io.ReaderAt) (*superblock, error) {
	sb := &superblock{}
	if _, err := f.ReadAt(sb.raw[:], sbOffset); err != nil {
		return nil, fmt.Errorf("read superblock: %w", err)
	}
	le := binary.LittleEndian
	if le.Uint16(sb.raw[sbMagic:]) != ext4Magic {
		return nil, fmt.Errorf("not an ext4 filesystem")
	}
	sb.blockSize = 1024 << le.Uint32(sb.raw[sbLogBlockSize:])
	sb.blocks = uint64(le.Uint32(sb.raw[sbBlocksCountLo:]))
	sb.blocksPerGroup = le.Uint32(sb.raw[sbBlocksPerGroup:])
	sb.inodesPerGroup = le.Uint32(sb.raw[sbInodesPerGroup:])
	sb.descSize = 32
	if le.Uint32(sb.raw[sbFeatureIncompat:])&incompat64bit != 0 {
		sb.descSize = int(le.Uint16(sb.raw[sbDescSize:]))
	}
	if sb.blockSize != 4096 || sb.blocksPerGroup == 0 || sb.inodesPerGroup == 0 {
		return nil, fmt.Errorf("unsupported ext4 geometry (block size %d)", sb.blockSize)
	}
	return sb, nil
}

// FixInodeBitmapPadding sets the bits past the last inode of each group's
// inode bitmap, which e2fsck expects set ("Padding at end of inode bitmap
// is not set") and tar2ext4 leaves clear.
func FixInodeBitmapPadding(f *os.File) error {
	sb, err := readSuperblock(f)
	if err != nil {
		return err
	}
	groups := (sb.blocks + uint64(sb.blocksPerGroup) - 1) / uint64(sb.blocksPerGroup)
	bits := uint32(sb.blockSize * 8)
	if sb.inodesPerGroup >= bits {
		return nil
	}
	gdt := make([]byte, groups*uint64(sb.descSize))
	if _, err := f.ReadAt(gdt, sb.blockSize); err != nil { // first data block 0: GDT at block 1
		return fmt.Errorf("read group descriptors: %w", err)
	}
	bm := make([]byte, sb.blockSize)
	for g := uint64(0); g < groups; g++ {
		d := gdt[g*uint64(sb.descSize):]
		blk := uint64(binary.LittleEndian.Uint32(d[gdInodeBitmapLo:]))
		if sb.descSize >= 64 {
			blk |= uint64(binary.LittleEndian.Uint32(d[gdInodeBitmapHi:])) << 32
		}
		off := int64(blk) * sb.blockSize
		if _, err := f.ReadAt(bm, off); err != nil {
			return fmt.Errorf("read inode bitmap of group %d: %w", g, err)
		}
		for i := sb.inodesPerGroup; i < bits; i++ {
			bm[i/8] |= 1 << (i % 8)
		}
		if _, err := f.WriteAt(bm, off); err != nil {
			return fmt.Errorf("write inode bitmap of group %d: %w", g, err)
		}
	}
	return nil
}

// ClearReadonly drops the read-only feature flag, for a writable clone
// of a base.
func ClearReadonly(f *os.File) error {
	sb, err := readSuperblock(f)
	if err != nil {
		return err
	}
	ro := binary.LittleEndian.Uint32(sb.raw[sbFeatureRoCompat:])
	if ro&roCompatReadonly == 0 {
		return nil
	}
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], ro&^roCompatReadonly)
	if _, err := f.WriteAt(b[:], sbOffset+sbFeatureRoCompat); err != nil {
		return fmt.Errorf("clear read-only flag: %w", err)
	}
	return nil
}
