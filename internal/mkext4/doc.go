// Package mkext4 writes a new, empty ext4 filesystem onto a block device or
// file, in pure Go. ferry-init uses it to format a machine's scratch disk
// inside the guest when the host hands over a blank device, because the guest
// has no mkfs.
//
// # Layout
//
// The result is what
//
//	mkfs.ext4 -b 4096 -T default -O ^resize_inode,sparse_super2 \
//	    -E lazy_itable_init=1,lazy_journal_init=1,num_backup_sb=0
//
// from e2fsprogs 1.47 produces, in block counts, inode counts and features:
// 4 KiB blocks, 256-byte inodes, 32768 blocks per group, one inode per 16 KiB
// by default, 5% of the blocks reserved for root, and the features has_journal,
// ext_attr, dir_index, sparse_super2 (no backup superblocks), filetype,
// extent, 64bit, flex_bg (16 groups), sparse_super, large_file, huge_file,
// dir_nlink, extra_isize and metadata_csum (crc32c, seeded from the UUID).
// Like mke2fs, a last group too short to hold its own inode table is dropped.
//
//	block 0                 superblock (at byte 1024)
//	blocks 1..G             group descriptors, 64 bytes each
//	per 16 groups           block bitmaps, inode bitmaps, inode tables,
//	                        packed at the start of the first group of the 16
//	after group 0's tables  root directory (1 block), lost+found (4 blocks),
//	                        the journal's extent leaf if it needs one, and
//	                        the journal (inode 8)
//
// The journal is placed first-fit after the root directory rather than in
// the middle of the disk as mke2fs does; nothing depends on where it is.
//
// With Options.Resizable (volumes, which grow), the layout is that of
//
//	mkfs.ext4 -b 4096 -T default -O ^resize_inode \
//	    -E lazy_itable_init=1,lazy_journal_init=1
//
// instead: no sparse_super2, and groups 1, 3, 5, 7, 9, 25, 27, ... start
// with a copy of the superblock and the group descriptors, so that Linux
// can grow the mounted filesystem (it refuses to with sparse_super2).
//
// # What is written
//
// Format initialises lazily, the way mke2fs does with lazy_itable_init and
// lazy_journal_init on a device that does not zero on discard: inode tables
// and journal blocks are left as they are (the kernel zeroes inode tables in
// the background; the journal is empty because its superblock says so), and
// groups holding no blocks in use carry BLOCK_UNINIT. Everything the
// filesystem's consistency depends on is written explicitly, so the device
// may hold garbage anywhere: the superblock, every group descriptor, the
// bitmaps of every initialised group (with their padding), the first
// inode-table block (inodes 1–16), the directory blocks and the journal
// superblock. An 8 GiB filesystem takes 60 KiB of writes in 9 calls, 100 GiB
// 300 KiB.
//
// The superblock is written last, after a Sync if the device has one, so an
// interrupted Format leaves the first block as it was and a blank device
// still looks blank.
//
// # What it does not do
//
// It creates no files beyond the root directory and lost+found, reads
// nothing from the device, and does not resize, check or mount filesystems.
// Sizes run from 16 MiB to 16 TiB.
package mkext4
