package mkext4

import (
	"fmt"
	"math"
)

// Fixed geometry: what mke2fs uses for a 4 KiB-block ext4.
const (
	blockSize      = 4096
	inodeSize      = 256
	blocksPerGroup = blockSize * 8 // one block bitmap's worth
	descSize       = 64            // 64bit group descriptors
	descsPerBlock  = blockSize / descSize
	inodesPerBlock = blockSize / inodeSize
	logFlex        = 4
	flexGroups     = 1 << logFlex
	maxIPG         = blockSize * 8 // one inode bitmap's worth
	reservedPct    = 5.0           // mke2fs's -m default
)

// geometry is the shape of the filesystem: its size in blocks, groups and
// inodes, and where each group's bitmaps and inode table are.
type geometry struct {
	blocks    uint64 // blocks in the filesystem; may be fewer than the device has
	reserved  uint64 // blocks reserved for root
	groups    uint64
	gdtBlocks uint64 // group descriptor table blocks, after the superblock
	ipg       uint64 // inodes per group
	itBlocks  uint64 // inode table blocks per group
	// backups: groups 1 and the powers of 3, 5 and 7 start with copies of
	// the superblock and group descriptors (sparse_super); otherwise there
	// are none (sparse_super2 with no backup groups).
	backups bool
}

// newGeometry lays out a filesystem on a device of devBlocks blocks the
// way ext2fs_initialize does: the inode count comes from the device size
// and the ratio, is spread evenly over the groups and rounded up to fill
// whole inode-table blocks, and a last group too short for its own
// bitmaps and inode table (plus 50 blocks) is dropped.
func newGeometry(devBlocks, inodeRatio uint64) (geometry, error) {
	return newGeometryWith(devBlocks, inodeRatio, false)
}

// newGeometryWith is newGeometry, with backup superblocks when backups.
func newGeometryWith(devBlocks, inodeRatio uint64, backups bool) (geometry, error) {
	g := geometry{blocks: devBlocks, backups: backups}
	inodes := min(max(devBlocks*blockSize/inodeRatio, firstIno+1), math.MaxUint32)
	r0 := uint64(reservedPct * float64(devBlocks) / 100.0)
	g.reserved = r0
	for {
		g.groups = ceilDiv(g.blocks, blocksPerGroup)
		g.gdtBlocks = ceilDiv(g.groups, descsPerBlock)
		ipg := min(ceilDiv(inodes, g.groups), maxIPG)
		g.itBlocks = ceilDiv(ipg*inodeSize, blockSize)
		for g.itBlocks*inodesPerBlock*g.groups > math.MaxUint32 {
			g.itBlocks--
		}
		g.ipg = g.itBlocks * inodesPerBlock
		overhead := 2 + g.itBlocks // the last group holds no superblock copy
		if backups {
			overhead = 3 + g.itBlocks + g.gdtBlocks // as ext2fs_initialize counts it
		}
		rem := g.blocks % blocksPerGroup
		if rem == 0 || rem >= overhead+50 {
			break
		}
		if g.groups == 1 {
			return g, fmt.Errorf("%d blocks cannot hold a %d-block inode table: %w", g.blocks, g.itBlocks, ErrInvalid)
		}
		g.blocks -= rem
		ratio := 100.0 * float64(r0) / float64(devBlocks)
		g.reserved = uint64(ratio * float64(g.blocks) / 100.0)
	}
	if end := g.flexMetaStart(g.flexes()-1) + g.flexMetaLen(g.flexes()-1); end > g.blocks {
		return g, fmt.Errorf("inode tables end at block %d, past the last block %d: %w", end, g.blocks, ErrInvalid)
	}
	return g, nil
}

// inodes is the number of inodes in the filesystem.
func (g *geometry) inodes() uint64 { return g.groups * g.ipg }

// groupStart is the first block of group n.
func (g *geometry) groupStart(n uint64) uint64 { return n * blocksPerGroup }

// groupLen is the number of blocks in group n; only the last may be short.
func (g *geometry) groupLen(n uint64) uint64 {
	return min(blocksPerGroup, g.blocks-g.groupStart(n))
}

// flexes is the number of flex groups (runs of flexGroups groups whose
// bitmaps and inode tables are packed together).
func (g *geometry) flexes() uint64 { return ceilDiv(g.groups, flexGroups) }

// flexSize is the number of groups in flex group f.
func (g *geometry) flexSize(f uint64) uint64 { return min(flexGroups, g.groups-f*flexGroups) }

// flexMetaStart is the first block of flex group f's packed metadata: right
// after the group descriptors for the first, the start of its first group
// for the others (a multiple of 16, never a backup group: those are odd).
func (g *geometry) flexMetaStart(f uint64) uint64 {
	if f == 0 {
		return 1 + g.gdtBlocks
	}
	return g.groupStart(f * flexGroups)
}

// flexMetaLen is the length of flex group f's metadata: its block
// bitmaps, then its inode bitmaps, then its inode tables.
func (g *geometry) flexMetaLen(f uint64) uint64 { return g.flexSize(f) * (2 + g.itBlocks) }

// blockBitmap is the block holding group n's block bitmap.
func (g *geometry) blockBitmap(n uint64) uint64 {
	return g.flexMetaStart(n/flexGroups) + n%flexGroups
}

// inodeBitmap is the block holding group n's inode bitmap.
func (g *geometry) inodeBitmap(n uint64) uint64 {
	f := n / flexGroups
	return g.flexMetaStart(f) + g.flexSize(f) + n%flexGroups
}

// inodeTable is the first block of group n's inode table.
func (g *geometry) inodeTable(n uint64) uint64 {
	f := n / flexGroups
	return g.flexMetaStart(f) + 2*g.flexSize(f) + n%flexGroups*g.itBlocks
}

// hasBackup reports whether group n (n > 0) starts with a copy of the
// superblock and group descriptors: with backups, group 1 and the powers
// of 3, 5 and 7 (ext2fs_bg_has_super for sparse_super).
func (g *geometry) hasBackup(n uint64) bool {
	if !g.backups || n == 0 {
		return false
	}
	for _, b := range []uint64{3, 5, 7} {
		p := uint64(1)
		for p < n {
			p *= b
		}
		if p == n {
			return true
		}
	}
	return false
}

// backupRuns are the blocks of the backup superblocks and descriptor
// tables, in order.
func (g *geometry) backupRuns() []run {
	var out []run
	for n := uint64(1); n < g.groups; n++ {
		if g.hasBackup(n) {
			out = append(out, run{g.groupStart(n), 1 + g.gdtBlocks})
		}
	}
	return out
}

// defaultJournalBlocks is the journal size mke2fs picks for a filesystem of
// the given number of blocks (ext2fs_default_journal_size).
func defaultJournalBlocks(blocks uint64) uint64 {
	switch {
	case blocks < 32768: // 128 MiB
		return 1024
	case blocks < 256*1024: // 1 GiB
		return 4096
	case blocks < 512*1024: // 2 GiB
		return 8192
	case blocks < 4096*1024: // 16 GiB
		return 16384
	case blocks < 8192*1024: // 32 GiB
		return 32768
	case blocks < 16384*1024: // 64 GiB
		return 65536
	case blocks < 32768*1024: // 128 GiB
		return 131072
	}
	return 262144
}

// ceilDiv is a/b rounded up.
func ceilDiv(a, b uint64) uint64 { return (a + b - 1) / b }
