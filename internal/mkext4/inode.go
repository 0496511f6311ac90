package mkext4

import (
	"encoding/binary"
	"time"
)

// Reserved inode numbers, and the first one for ordinary files.
const (
	badBlocksIno = 1
	rootIno      = 2
	journalIno   = 8
	lpfIno       = 11
	firstIno     = 11 // s_first_ino: lost+found is the first non-reserved inode
)

const (
	extraIsize      = 32      // bytes of the large inode in use past 128
	extentsFlag     = 0x80000 // EXT4_EXTENTS_FL: i_block holds an extent tree
	modeDir         = 0o040000
	modeRegular     = 0o100000
	sectorsPerBlock = blockSize / 512
)

// inode is the content of an inode Format creates; the rest stays zero.
type inode struct {
	mode   uint16
	links  uint16
	size   uint64
	blocks uint64   // blocks owned, data and extent tree alike
	iblock [60]byte // i_block: an extent tree root
	times  bool     // stamp atime, ctime and mtime
	large  bool     // use the extra fields: i_extra_isize, crtime, checksum hi
}

// encode writes inode number ino into b (inodeSize bytes), checksummed.
func (in *inode) encode(b []byte, seed uint32, ino uint32, now time.Time) {
	clear(b)
	le := binary.LittleEndian
	le.PutUint16(b[0x00:], in.mode)
	le.PutUint32(b[0x04:], uint32(in.size))
	if in.times {
		sec, extra := inodeTime(now)
		for _, off := range []int{0x08, 0x0C, 0x10} { // atime, ctime, mtime
			le.PutUint32(b[off:], sec)
		}
		if in.large {
			for _, off := range []int{0x84, 0x88, 0x8C, 0x94} { // ctime, mtime, atime, crtime extra
				le.PutUint32(b[off:], extra)
			}
			le.PutUint32(b[0x90:], sec) // crtime
		}
	}
	le.PutUint16(b[0x1A:], in.links)
	sectors := in.blocks * sectorsPerBlock
	le.PutUint32(b[0x1C:], uint32(sectors))
	if in.blocks > 0 {
		le.PutUint32(b[0x20:], extentsFlag)
	}
	copy(b[0x28:0x64], in.iblock[:])
	le.PutUint32(b[0x6C:], uint32(in.size>>32))
	le.PutUint16(b[0x74:], uint16(sectors>>32))
	if in.large {
		le.PutUint16(b[0x80:], extraIsize)
	}
	crc := crc32c(inodeSeed(seed, ino, 0), b[:inodeSize])
	le.PutUint16(b[0x7C:], uint16(crc))
	if in.large {
		le.PutUint16(b[0x82:], uint16(crc>>16))
	}
}

// inodeTime splits t into the 32-bit seconds field and the extra field
// that holds two more bits of seconds (the epoch) and the nanoseconds.
func inodeTime(t time.Time) (sec, extra uint32) {
	s := t.Unix()
	epoch := uint32((s-int64(int32(s)))>>32) & 3
	return uint32(s), epoch | uint32(t.Nanosecond())<<2
}

// Extent tree sizes.
const (
	extentMagic  = 0xF30A
	inodeExtents = 4                     // entries in the tree root in i_block
	leafExtents  = (blockSize - 12) / 12 // entries in a tree block
	extentTail   = 12 + 12*leafExtents   // offset of a tree block's checksum
)

// putExtentHeader writes an extent tree node header.
func putExtentHeader(b []byte, entries, max, depth int) {
	le := binary.LittleEndian
	le.PutUint16(b[0:], extentMagic)
	le.PutUint16(b[2:], uint16(entries))
	le.PutUint16(b[4:], uint16(max))
	le.PutUint16(b[6:], uint16(depth))
}

// putExtents writes a header and the extents mapping runs, in order, from
// logical block 0.
func putExtents(b []byte, runs []run, max int) {
	putExtentHeader(b, len(runs), max, 0)
	le := binary.LittleEndian
	var logical uint32
	for i, r := range runs {
		e := b[12+12*i:]
		le.PutUint32(e[0:], logical)
		le.PutUint16(e[4:], uint16(r.len))
		le.PutUint16(e[6:], uint16(r.start>>32))
		le.PutUint32(e[8:], uint32(r.start))
		logical += uint32(r.len)
	}
}

// putIndex writes a depth-1 tree root whose one entry points at leaf.
func putIndex(b []byte, leaf uint64) {
	putExtentHeader(b, 1, inodeExtents, 1)
	le := binary.LittleEndian
	le.PutUint32(b[12:], 0) // first logical block
	le.PutUint32(b[16:], uint32(leaf))
	le.PutUint16(b[20:], uint16(leaf>>32))
}

// extentRoot is an i_block holding runs directly (at most inodeExtents).
func extentRoot(runs []run) [60]byte {
	var ib [60]byte
	putExtents(ib[:], runs, inodeExtents)
	return ib
}
