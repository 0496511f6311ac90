package mkext4

import "encoding/binary"

const (
	jbd2Magic        = 0xC03B3998
	jbd2SuperblockV2 = 4
)

// journalSuper is the journal's first block: a jbd2 v2 superblock of an
// empty journal (s_start 0), so nothing in the rest of the journal is ever
// read before it is written, which is why it need not be zeroed.
func journalSuper(p *plan, uuid [16]byte) []byte {
	b := make([]byte, blockSize)
	be := binary.BigEndian // jbd2 is big-endian
	be.PutUint32(b[0x00:], jbd2Magic)
	be.PutUint32(b[0x04:], jbd2SuperblockV2)
	be.PutUint32(b[0x0C:], blockSize)
	be.PutUint32(b[0x10:], uint32(p.journalBlocks())) // s_maxlen
	be.PutUint32(b[0x14:], 1)                         // s_first: the first log block
	be.PutUint32(b[0x18:], 1)                         // s_sequence: the first transaction expected
	be.PutUint32(b[0x1C:], 0)                         // s_start: 0, the journal is empty
	copy(b[0x30:0x40], uuid[:])
	be.PutUint32(b[0x40:], 1) // s_nr_users: this filesystem
	return b
}

// journalBlocks is the journal's length in blocks, its extent leaf not
// counted.
func (p *plan) journalBlocks() uint64 { return sumLen(p.journal) }

// journalInode is inode 8 mapping the journal, and the extent leaf block
// it points at when the extents do not fit in the inode (nil otherwise).
func journalInode(p *plan, seed uint32) (inode, []byte) {
	n := p.journalBlocks()
	in := inode{mode: modeRegular | 0o600, links: 1, size: n * blockSize, blocks: n, times: true, large: true}
	if p.journalLeaf == 0 {
		in.iblock = extentRoot(p.journal)
		return in, nil
	}
	in.blocks++
	putIndex(in.iblock[:], p.journalLeaf)
	leaf := make([]byte, blockSize)
	putExtents(leaf, p.journal, leafExtents)
	crc := crc32c(inodeSeed(seed, journalIno, 0), leaf[:extentTail])
	binary.LittleEndian.PutUint32(leaf[extentTail:], crc)
	return in, leaf
}

// journalBackup is the superblock's copy of the journal inode's i_block
// and size (s_jnl_blocks), which e2fsck uses to rebuild a damaged inode.
func journalBackup(in *inode) [17]uint32 {
	var j [17]uint32
	for i := range 15 {
		j[i] = binary.LittleEndian.Uint32(in.iblock[4*i:])
	}
	j[15] = uint32(in.size >> 32)
	j[16] = uint32(in.size)
	return j
}
