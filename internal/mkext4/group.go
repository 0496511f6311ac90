package mkext4

import (
	"cmp"
	"encoding/binary"
	"slices"
)

// Group descriptor flags (bg_flags).
const (
	bgInodeUninit = 0x0001 // inode bitmap not initialised: all free
	bgBlockUninit = 0x0002 // block bitmap not initialised: only own metadata in use
)

// group is one block group's descriptor, before encoding.
type group struct {
	blockBitmap, inodeBitmap, inodeTable uint64
	freeBlocks, freeInodes, usedDirs     uint32
	itableUnused                         uint32 // inodes at the end of the table never used
	flags                                uint16
	blockBitmapCsum, inodeBitmapCsum     uint32
}

// encode writes the 64-byte descriptor of group n into b, checksummed.
func (d *group) encode(b []byte, seed uint32, n uint32) {
	le := binary.LittleEndian
	le.PutUint32(b[0x00:], uint32(d.blockBitmap))
	le.PutUint32(b[0x04:], uint32(d.inodeBitmap))
	le.PutUint32(b[0x08:], uint32(d.inodeTable))
	le.PutUint16(b[0x0C:], uint16(d.freeBlocks))
	le.PutUint16(b[0x0E:], uint16(d.freeInodes))
	le.PutUint16(b[0x10:], uint16(d.usedDirs))
	le.PutUint16(b[0x12:], d.flags)
	le.PutUint16(b[0x18:], uint16(d.blockBitmapCsum))
	le.PutUint16(b[0x1A:], uint16(d.inodeBitmapCsum))
	le.PutUint16(b[0x1C:], uint16(d.itableUnused))
	le.PutUint32(b[0x20:], uint32(d.blockBitmap>>32))
	le.PutUint32(b[0x24:], uint32(d.inodeBitmap>>32))
	le.PutUint32(b[0x28:], uint32(d.inodeTable>>32))
	le.PutUint16(b[0x2C:], uint16(d.freeBlocks>>16))
	le.PutUint16(b[0x2E:], uint16(d.freeInodes>>16))
	le.PutUint16(b[0x30:], uint16(d.usedDirs>>16))
	le.PutUint16(b[0x32:], uint16(d.itableUnused>>16))
	le.PutUint16(b[0x38:], uint16(d.blockBitmapCsum>>16))
	le.PutUint16(b[0x3A:], uint16(d.inodeBitmapCsum>>16))
	le.PutUint16(b[0x1E:], 0) // the checksum covers the descriptor with itself zero
	crc := crc32c(crc32cU32(seed, n), b[:descSize])
	le.PutUint16(b[0x1E:], uint16(crc))
}

// descriptors builds every group's descriptor, and the block bitmaps of the
// groups that need one (keyed by group), as the plan and the inodes in use
// (1..firstIno, all in group 0) dictate.
func (p *plan) descriptors(seed uint32, inodeBitmap0 []byte) ([]group, map[uint64][]byte) {
	descs := make([]group, p.groups)
	bitmaps := make(map[uint64][]byte)
	last := p.groups - 1
	for n := range p.groups {
		d := &descs[n]
		d.blockBitmap, d.inodeBitmap, d.inodeTable = p.blockBitmap(n), p.inodeBitmap(n), p.inodeTable(n)
		d.freeBlocks = uint32(p.groupLen(n)) - p.usedIn[n]
		d.freeInodes, d.itableUnused = uint32(p.ipg), uint32(p.ipg)
		d.flags = bgInodeUninit
		if p.usedIn[n] == 0 && n != last {
			d.flags |= bgBlockUninit
		} else {
			bm := p.blockBitmapOf(n)
			d.blockBitmapCsum = crc32c(seed, bm)
			bitmaps[n] = bm
		}
	}
	d := &descs[0]
	d.freeInodes, d.itableUnused = uint32(p.ipg-firstIno), uint32(p.ipg-firstIno)
	d.usedDirs = 2 // root and lost+found
	d.flags &^= bgInodeUninit
	d.inodeBitmapCsum = crc32c(seed, inodeBitmap0[:p.ipg/8])
	return descs, bitmaps
}

// blockBitmapOf is group n's block bitmap: a bit for every block in use,
// and every bit past the end of a short last group set.
func (p *plan) blockBitmapOf(n uint64) []byte {
	bm := make([]byte, blockSize)
	start := p.groupStart(n)
	end := start + p.groupLen(n)
	i, _ := slices.BinarySearchFunc(p.used, start, func(r run, b uint64) int { return cmp.Compare(r.end(), b+1) })
	for _, r := range p.used[i:] {
		if r.start >= end {
			break
		}
		lo, hi := max(r.start, start), min(r.end(), end)
		for b := lo; b < hi; b++ {
			setBit(bm, b-start)
		}
	}
	for i := end - start; i < blocksPerGroup; i++ {
		setBit(bm, i)
	}
	return bm
}

// firstInodeBitmap is group 0's inode bitmap: the reserved inodes and
// lost+found in use, and the padding past the group's inodes set.
func (p *plan) firstInodeBitmap() []byte {
	bm := make([]byte, blockSize)
	for i := range uint64(firstIno) {
		setBit(bm, i)
	}
	for i := p.ipg; i < blockSize*8; i++ {
		setBit(bm, i)
	}
	return bm
}

// setBit sets bit i of a little-endian bitmap.
func setBit(bm []byte, i uint64) { bm[i/8] |= 1 << (i % 8) }

// encodeGDT encodes the descriptors into the group descriptor table,
// padded to whole blocks.
func encodeGDT(descs []group, seed uint32, gdtBlocks uint64) []byte {
	b := make([]byte, gdtBlocks*blockSize)
	for n := range descs {
		descs[n].encode(b[n*descSize:(n+1)*descSize], seed, uint32(n))
	}
	return b
}
