package mkext4

import (
	"fmt"
	"io"
)

// Format writes a new, empty ext4 filesystem to dev, which is size bytes
// long; a size that is not a whole number of 4 KiB blocks is rounded down,
// and nothing is written at or past it. Format reads nothing and writes
// only the metadata the filesystem needs (see the package comment), so
// the device may hold anything beforehand. If dev has a Sync method,
// Format calls it before writing the superblock and after.
//
// Errors for a size or option Format cannot use wrap ErrInvalid; errors
// from dev are wrapped with what was being written.
func Format(dev io.WriterAt, size int64, o Options) error {
	if size < MinSize || size > MaxSize {
		return fmt.Errorf("format: size %d bytes outside [%d, %d]: %w", size, MinSize, MaxSize, ErrInvalid)
	}
	s, err := o.resolve()
	if err != nil {
		return fmt.Errorf("format: %w", err)
	}
	p, err := planFor(uint64(size)/blockSize, &s)
	if err != nil {
		return fmt.Errorf("format %d bytes: %w", size, err)
	}
	pieces, super := p.build(&s)
	if err := writePieces(dev, size, pieces, super); err != nil {
		return fmt.Errorf("format: %w", err)
	}
	return nil
}

// planFor lays out and allocates a filesystem on devBlocks blocks.
func planFor(devBlocks uint64, s *settings) (plan, error) {
	g, err := newGeometryWith(devBlocks, s.inodeRatio, s.resizable)
	if err != nil {
		return plan{}, err
	}
	var journal uint64
	switch {
	case s.journal == 0:
		journal = defaultJournalBlocks(g.blocks)
	case s.journal > 0:
		journal = uint64(s.journal)
	}
	return newPlan(g, journal)
}

// build encodes every piece of metadata the plan calls for, and the
// superblock's block separately.
func (p *plan) build(s *settings) (pieces []piece, super piece) {
	seed := fsSeed(s.uuid)
	ib0 := p.firstInodeBitmap()
	descs, bitmaps := p.descriptors(seed, ib0)
	for n, bm := range bitmaps {
		pieces = append(pieces, piece{"block bitmaps", p.blockBitmap(n), bm})
	}
	pieces = append(pieces,
		piece{"inode bitmap", p.inodeBitmap(0), ib0},
		piece{"root directory", p.root, rootBlock(seed)},
		piece{"lost+found", p.lpf, lpfBlocksData(seed)},
	)

	table := make([]byte, blockSize) // inodes 1..16, the first block of group 0's table
	put := func(ino uint32, in inode) {
		in.encode(table[(ino-1)*inodeSize:ino*inodeSize], seed, ino, s.now)
	}
	for ino := uint32(1); ino < firstIno; ino++ {
		put(ino, inode{times: ino == badBlocksIno})
	}
	put(rootIno, inode{mode: modeDir | 0o755, links: 3, size: blockSize, blocks: 1,
		iblock: extentRoot([]run{{p.root, 1}}), times: true, large: true})
	put(lpfIno, inode{mode: modeDir | 0o700, links: 2, size: lpfBlocks * blockSize, blocks: lpfBlocks,
		iblock: extentRoot([]run{{p.lpf, lpfBlocks}}), times: true, large: true})
	var sb superblock
	if len(p.journal) > 0 {
		in, leaf := journalInode(p, seed)
		put(journalIno, in)
		sb.journal = journalBackup(&in)
		pieces = append(pieces, piece{"journal superblock", p.journal[0].start, journalSuper(p, s.uuid)})
		if leaf != nil {
			pieces = append(pieces, piece{"journal extent leaf", p.journalLeaf, leaf})
		}
	}
	pieces = append(pieces, piece{"inode table", p.inodeTable(0), table})
	pieces = append(pieces, piece{"group descriptors", 1, encodeGDT(descs, seed, p.gdtBlocks)})

	sb.freeBlocks = p.blocks - sumLen(p.used)
	sb.freeInodes = p.inodes() - firstIno
	// Overhead, as mke2fs counts it: everything in use but the
	// directories and the journal's extent leaf.
	sb.overhead = sumLen(p.used) - 1 - lpfBlocks
	if p.journalLeaf != 0 {
		sb.overhead--
	}
	for _, b := range p.backupRuns() {
		sb.groupNr = uint16(b.start / blocksPerGroup)
		backup := make([]byte, blockSize) // a backup starts its group's first block
		copy(backup, encodeSuper(p, s, sb))
		pieces = append(pieces, piece{"backup superblocks", b.start, backup},
			piece{"backup group descriptors", b.start + 1, encodeGDT(descs, seed, p.gdtBlocks)})
	}
	sb.groupNr = 0
	block0 := make([]byte, blockSize)
	copy(block0[superOffset:], encodeSuper(p, s, sb))
	return pieces, piece{"superblock", 0, block0}
}
