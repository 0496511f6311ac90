package mkext4

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// TestEncodersMatchMke2fs reads a 1 GiB filesystem mkfs.ext4 made and
// checks, structure by structure, that this package's encoders and
// checksums produce the same bytes from the same values: the superblock
// checksum, the group descriptors, the bitmap checksums, inodes 1–11, the
// root and lost+found directory blocks and the journal superblock.
func TestEncodersMatchMke2fs(t *testing.T) {
	prereq.Tools(t, "mkfs.ext4")
	path := sparseFile(t, 1<<30)
	mkfs(t, path)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	blocks := func(n, count uint64) []byte {
		b := make([]byte, count*blockSize)
		if _, err := f.ReadAt(b, int64(n*blockSize)); err != nil {
			t.Fatalf("read block %d: %v", n, err)
		}
		return b
	}
	block := func(n uint64) []byte { return blocks(n, 1) }
	le := binary.LittleEndian

	sb := block(0)[superOffset : superOffset+1024]
	if got, want := crc32c(^uint32(0), sb[:0x3FC]), le.Uint32(sb[0x3FC:]); got != want {
		t.Fatalf("superblock checksum %#x, mkfs.ext4 stored %#x", got, want)
	}
	var uuid [16]byte
	copy(uuid[:], sb[0x68:])
	seed := fsSeed(uuid)
	groups := le.Uint32(sb[0x04:]) / blocksPerGroup

	// Group descriptors and the bitmaps they checksum.
	gdt := block(1)
	for n := range groups {
		raw := gdt[n*descSize : (n+1)*descSize]
		d := decodeGroup(raw)
		got := make([]byte, descSize)
		d.encode(got, seed, n)
		if !bytes.Equal(got, raw) {
			t.Errorf("group %d descriptor:\n got %x\nwant %x", n, got, raw)
		}
		if d.flags&bgBlockUninit == 0 {
			if c := crc32c(seed, block(d.blockBitmap)); c != d.blockBitmapCsum {
				t.Errorf("group %d block bitmap checksum %#x, mkfs.ext4 stored %#x", n, c, d.blockBitmapCsum)
			}
		}
		if d.flags&bgInodeUninit == 0 {
			ipg := le.Uint32(sb[0x28:])
			if c := crc32c(seed, block(d.inodeBitmap)[:ipg/8]); c != d.inodeBitmapCsum {
				t.Errorf("group %d inode bitmap checksum %#x, mkfs.ext4 stored %#x", n, c, d.inodeBitmapCsum)
			}
		}
	}

	// Inodes 1..11, rebuilt from the values mkfs.ext4 gave them.
	table := block(decodeGroup(gdt[:descSize]).inodeTable) // inodes 1..16
	raw := func(ino uint32) []byte { return table[(ino-1)*inodeSize : ino*inodeSize] }
	now := time.Unix(int64(le.Uint32(raw(rootIno)[0x0C:])), 0)
	extentStart := func(ino uint32) uint64 { return uint64(le.Uint32(raw(ino)[0x28+20:])) }
	root, lpf, journal := extentStart(rootIno), extentStart(lpfIno), extentStart(journalIno)
	journalLen := uint64(le.Uint16(raw(journalIno)[0x28+16:]))
	p := &plan{root: root, lpf: lpf, journal: []run{{journal, journalLen}}}
	jin, leaf := journalInode(p, seed)
	if leaf != nil {
		t.Fatalf("a %d-block journal got an extent leaf", journalLen)
	}
	want := map[uint32]inode{
		rootIno: {mode: modeDir | 0o755, links: 3, size: blockSize, blocks: 1,
			iblock: extentRoot([]run{{root, 1}}), times: true, large: true},
		lpfIno: {mode: modeDir | 0o700, links: 2, size: lpfBlocks * blockSize, blocks: lpfBlocks,
			iblock: extentRoot([]run{{lpf, lpfBlocks}}), times: true, large: true},
		journalIno:   jin,
		badBlocksIno: {times: true},
	}
	for ino := uint32(1); ino <= lpfIno; ino++ {
		in := want[ino]
		got := make([]byte, inodeSize)
		in.encode(got, seed, ino, now)
		if !bytes.Equal(got, raw(ino)) {
			t.Errorf("inode %d:\n got %x\nwant %x", ino, got, raw(ino))
		}
	}

	// Directory blocks and the journal superblock.
	if got := rootBlock(seed); !bytes.Equal(got, block(root)) {
		t.Errorf("root directory block:\n got %x\nwant %x", got, block(root))
	}
	if got, want := lpfBlocksData(seed), blocks(lpf, lpfBlocks); !bytes.Equal(got, want) {
		t.Errorf("lost+found blocks differ from mkfs.ext4's")
	}
	if got := journalSuper(p, uuid); !bytes.Equal(got, block(journal)) {
		t.Errorf("journal superblock:\n got %x\nwant %x", got[:256], block(journal)[:256])
	}
	if got := journalBackup(&jin); got != decodeJnlBlocks(sb) {
		t.Errorf("s_jnl_blocks %v, mkfs.ext4 %v", got, decodeJnlBlocks(sb))
	}
}

// decodeGroup reads a 64-byte group descriptor.
func decodeGroup(b []byte) group {
	le := binary.LittleEndian
	lohi32 := func(lo, hi int) uint64 { return uint64(le.Uint32(b[lo:])) | uint64(le.Uint32(b[hi:]))<<32 }
	lohi16 := func(lo, hi int) uint32 { return uint32(le.Uint16(b[lo:])) | uint32(le.Uint16(b[hi:]))<<16 }
	return group{
		blockBitmap:     lohi32(0x00, 0x20),
		inodeBitmap:     lohi32(0x04, 0x24),
		inodeTable:      lohi32(0x08, 0x28),
		freeBlocks:      lohi16(0x0C, 0x2C),
		freeInodes:      lohi16(0x0E, 0x2E),
		usedDirs:        lohi16(0x10, 0x30),
		flags:           le.Uint16(b[0x12:]),
		itableUnused:    lohi16(0x1C, 0x32),
		blockBitmapCsum: lohi16(0x18, 0x38),
		inodeBitmapCsum: lohi16(0x1A, 0x3A),
	}
}

// decodeJnlBlocks reads the superblock's s_jnl_blocks.
func decodeJnlBlocks(sb []byte) [17]uint32 {
	var j [17]uint32
	for i := range j {
		j[i] = binary.LittleEndian.Uint32(sb[0x10C+4*i:])
	}
	return j
}
