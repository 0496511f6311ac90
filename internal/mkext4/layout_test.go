package mkext4

import (
	"errors"
	"testing"
)

// TestGeometry checks newGeometry against what mke2fs 1.47 made of the same
// device sizes (mkfs.ext4 -b 4096 -T default, read back with dumpe2fs),
// so it means something where e2fsprogs is not installed.
func TestGeometry(t *testing.T) {
	for _, tc := range []struct {
		devBlocks uint64
		blocks    uint64
		inodes    uint64
		ipg       uint64
		reserved  uint64
	}{
		{4096, 4096, 1024, 1024, 204},
		{16384, 16384, 4096, 4096, 819},
		{33025, 32768, 8256, 8256, 1638}, // 257-block last group dropped
		{51201, 51201, 12800, 6400, 2560},
		{65931, 65536, 16512, 8256, 3276}, // 395-block last group dropped
		{65932, 65932, 16512, 5504, 3296}, // 396-block last group kept
		{200000, 200000, 50064, 7152, 10000},
		{262144, 262144, 65536, 8192, 13107},
		{2097152, 2097152, 524288, 8192, 104857},
		{26214400, 26214400, 6553600, 8192, 1310720},
	} {
		g, err := newGeometry(tc.devBlocks, DefaultInodeRatio)
		if err != nil {
			t.Errorf("newGeometry(%d): %v", tc.devBlocks, err)
			continue
		}
		if g.blocks != tc.blocks || g.inodes() != tc.inodes || g.ipg != tc.ipg || g.reserved != tc.reserved {
			t.Errorf("newGeometry(%d) = %d blocks, %d inodes, %d per group, %d reserved; mke2fs: %d, %d, %d, %d",
				tc.devBlocks, g.blocks, g.inodes(), g.ipg, g.reserved, tc.blocks, tc.inodes, tc.ipg, tc.reserved)
		}
	}
}

// TestGeometryLargest checks that 2^32 blocks at the smallest inode ratio
// still keeps the inode count within 32 bits.
func TestGeometryLargest(t *testing.T) {
	g, err := newGeometry(1<<32, minInodeRatio)
	if err != nil {
		t.Fatal(err)
	}
	if g.inodes() > 1<<32-1 || g.ipg%inodesPerBlock != 0 || g.ipg > maxIPG {
		t.Errorf("%d inodes, %d per group", g.inodes(), g.ipg)
	}
}

func TestDefaultJournalBlocks(t *testing.T) {
	// Boundaries of ext2fs_default_journal_size.
	for blocks, want := range map[uint64]uint64{
		4096: 1024, 32767: 1024, 32768: 4096, 262143: 4096, 262144: 8192,
		524288: 16384, 4194304: 32768, 8388608: 65536, 16777216: 131072,
		33554431: 131072, 33554432: 262144, 1 << 32: 262144,
	} {
		if got := defaultJournalBlocks(blocks); got != want {
			t.Errorf("defaultJournalBlocks(%d) = %d, want %d", blocks, got, want)
		}
	}
}

// TestPlanJournalSplits checks that a journal too long for one flex
// group's free space steps over the next flex group's metadata, and that
// the extents then go to a leaf block.
func TestPlanJournalSplits(t *testing.T) {
	g, err := newGeometry(1<<22, DefaultInodeRatio) // 16 GiB: 8 flex groups
	if err != nil {
		t.Fatal(err)
	}
	p, err := newPlan(g, maxExtentLen*20) // more than flex group 0 has free
	if err != nil {
		t.Fatal(err)
	}
	if p.journalLeaf == 0 {
		t.Error("a 20-extent journal has no extent leaf")
	}
	meta := run{g.flexMetaStart(1), g.flexMetaLen(1)}
	var total uint64
	for _, e := range p.journal {
		total += e.len
		if e.len > maxExtentLen {
			t.Errorf("extent %v longer than %d", e, maxExtentLen)
		}
		if e.start < meta.end() && meta.start < e.end() {
			t.Errorf("extent %v overlaps flex group 1's metadata %v", e, meta)
		}
	}
	if total != maxExtentLen*20 {
		t.Errorf("journal extents cover %d blocks, want %d", total, maxExtentLen*20)
	}
	if _, err := newPlan(g, g.blocks); !errors.Is(err, ErrInvalid) {
		t.Errorf("a journal the size of the disk: %v, want ErrInvalid", err)
	}
}
