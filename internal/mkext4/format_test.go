package mkext4

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// wantFeatures is what dumpe2fs lists for every filesystem Format makes.
const wantFeatures = "has_journal ext_attr dir_index sparse_super2 filetype extent 64bit flex_bg sparse_super large_file huge_file dir_nlink extra_isize metadata_csum"

func TestFormatSizes(t *testing.T) {
	prereq.Tools(t, "e2fsck", "dumpe2fs")
	const KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
	for _, tc := range []struct {
		name        string
		size        int64
		wantBlocks  uint64 // the filesystem's size in blocks, as mke2fs makes it
		wantJournal string
		maxBytes    int64 // written, and allocated in the file
	}{
		{"16MiB", 16 * MiB, 4096, "4096k", 64 * KiB},
		{"64MiB", 64 * MiB, 16384, "4096k", 64 * KiB},
		// 257 blocks in the last group are too few for its inode
		// table, so the group is dropped, as mke2fs does.
		{"129MiB+4KiB", 129*MiB + 4*KiB, 32768, "16M", 64 * KiB},
		// 18433 blocks in the last group: kept, with bitmap padding.
		{"200MiB+4KiB", 200*MiB + 4*KiB, 51201, "16M", 64 * KiB},
		{"1GiB", 1 * GiB, 262144, "32M", 64 * KiB},
		{"8GiB", 8 * GiB, 2097152, "64M", 128 * KiB},
		{"100GiB", 100 * GiB, 26214400, "512M", 512 * KiB},
		// 8 extents: the journal needs an extent leaf block.
		{"200GiB", 200 * GiB, 52428800, "1024M", 1 * MiB},
		{"1TiB-4KiB", 1<<40 - 4*KiB, 268435455, "1024M", 3 * MiB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := sparseFile(t, tc.size)
			start := time.Now()
			rec := formatFile(t, path, tc.size, Options{Label: "ferry-scratch"})
			elapsed := time.Since(start)
			rec.checkBounds(t, tc.size)
			alloc := allocated(t, path)
			t.Logf("%s: %d writes, %s written, %s allocated, %v", tc.name, len(rec.writes), mib(rec.bytes), mib(alloc), elapsed)
			if rec.bytes > tc.maxBytes || alloc > tc.maxBytes {
				t.Errorf("wrote %d bytes, %d allocated; want at most %d", rec.bytes, alloc, tc.maxBytes)
			}

			inodesUsed, blocksUsed := fsck(t, path)
			h := dumpe2fs(t, path)
			for k, want := range map[string]string{
				"Filesystem volume name": "ferry-scratch",
				"Filesystem features":    wantFeatures,
				"Filesystem state":       "clean",
				"Block count":            fmt.Sprint(tc.wantBlocks),
				"Block size":             "4096",
				"Blocks per group":       "32768",
				"Inode size":             "256",
				"Flex block group size":  "16",
				"Free blocks":            fmt.Sprint(tc.wantBlocks - blocksUsed),
				"Free inodes":            fmt.Sprint(atou(t, h["Inode count"]) - inodesUsed),
				"Journal inode":          "8",
				"Total journal size":     tc.wantJournal,
				"Journal start":          "0",
				"Journal sequence":       "0x00000001",
				"Checksum type":          "crc32c",
			} {
				if got := h[k]; got != want {
					t.Errorf("dumpe2fs %s = %q, want %q", k, got, want)
				}
			}
			if inodesUsed != firstIno {
				t.Errorf("e2fsck counts %d inodes in use, want %d", inodesUsed, firstIno)
			}
		})
	}
}

// TestFormatLastGroupPadding checks short last groups: a single group, a
// group whose length is not a multiple of 8, the shortest group kept (396
// blocks: 344 of inode table, 2 of bitmaps, 50 spare) and one block fewer,
// which is dropped.
func TestFormatLastGroupPadding(t *testing.T) {
	prereq.Tools(t, "e2fsck", "dumpe2fs")
	for _, blocks := range []int64{4097, 32768 + 2003, 65536 + 396, 65536 + 395} {
		t.Run(fmt.Sprint(blocks), func(t *testing.T) {
			size := blocks * blockSize
			path := sparseFile(t, size)
			formatFile(t, path, size, Options{})
			fsck(t, path)
			out := runCmd(t, "dumpe2fs", path)
			if strings.Contains(out, "bitmap checksum does not match") {
				t.Errorf("dumpe2fs reports a bad bitmap checksum:\n%s", out)
			}
			// Format writes one block of inode table: no group may
			// claim a zeroed table, or the kernel would not zero it.
			if strings.Contains(out, "ITABLE_ZEROED") {
				t.Errorf("a group claims a zeroed inode table:\n%s", out)
			}
		})
	}
}
