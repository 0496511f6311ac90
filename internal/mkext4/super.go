package mkext4

import (
	"encoding/binary"
	"time"
)

// superOffset is where the superblock starts on the device.
const superOffset = 1024

// Feature flags (s_feature_*), as mke2fs 1.47 sets them for ext4 without
// resize_inode and with sparse_super2 (Options.Resizable: without
// sparse_super2).
const (
	compatHasJournal   = 0x0004
	compatExtAttr      = 0x0008
	compatDirIndex     = 0x0020
	compatSparseSuper2 = 0x0200

	incompatFiletype = 0x0002
	incompatExtents  = 0x0040
	incompat64bit    = 0x0080
	incompatFlexBG   = 0x0200

	roCompatSparseSuper  = 0x0001
	roCompatLargeFile    = 0x0002
	roCompatHugeFile     = 0x0008
	roCompatDirNlink     = 0x0020
	roCompatExtraIsize   = 0x0040
	roCompatMetadataCsum = 0x0400

	compatFeatures   = compatExtAttr | compatDirIndex | compatSparseSuper2
	incompatFeatures = incompatFiletype | incompatExtents | incompat64bit | incompatFlexBG
	roCompatFeatures = roCompatSparseSuper | roCompatLargeFile | roCompatHugeFile |
		roCompatDirNlink | roCompatExtraIsize | roCompatMetadataCsum
)

// superblock is what the superblock records beyond the plan and settings.
type superblock struct {
	freeBlocks uint64
	freeInodes uint64
	overhead   uint64     // s_overhead_clusters: metadata and journal, as mke2fs counts them
	journal    [17]uint32 // backup of the journal inode's i_block and size; zero: no journal
	groupNr    uint16     // s_block_group_nr: the group a backup copy is in
}

// encodeSuper returns the 1024-byte superblock, checksummed.
func encodeSuper(p *plan, s *settings, sb superblock) []byte {
	b := make([]byte, 1024)
	le := binary.LittleEndian
	le.PutUint32(b[0x00:], uint32(p.inodes()))
	le.PutUint32(b[0x04:], uint32(p.blocks))
	le.PutUint32(b[0x08:], uint32(p.reserved))
	le.PutUint32(b[0x0C:], uint32(sb.freeBlocks))
	le.PutUint32(b[0x10:], uint32(sb.freeInodes))
	le.PutUint32(b[0x14:], 0) // s_first_data_block
	le.PutUint32(b[0x18:], 2) // s_log_block_size: 1024 << 2
	le.PutUint32(b[0x1C:], 2) // s_log_cluster_size
	le.PutUint32(b[0x20:], blocksPerGroup)
	le.PutUint32(b[0x24:], blocksPerGroup) // s_clusters_per_group
	le.PutUint32(b[0x28:], uint32(p.ipg))
	now := unixTime(s.now)
	le.PutUint32(b[0x30:], uint32(now)) // s_wtime
	le.PutUint16(b[0x36:], 0xFFFF)      // s_max_mnt_count: -1, no mount-count checks
	le.PutUint16(b[0x38:], 0xEF53)      // s_magic
	le.PutUint16(b[0x3A:], 1)           // s_state: cleanly unmounted
	le.PutUint16(b[0x3C:], 1)           // s_errors: continue
	le.PutUint32(b[0x40:], uint32(now)) // s_lastcheck
	le.PutUint32(b[0x4C:], 1)           // s_rev_level: dynamic
	le.PutUint32(b[0x54:], firstIno)    // s_first_ino
	le.PutUint16(b[0x58:], inodeSize)   // s_inode_size
	le.PutUint16(b[0x5A:], sb.groupNr)  // s_block_group_nr
	compat := uint32(compatFeatures)
	if p.backups {
		compat &^= compatSparseSuper2 // classic sparse_super backups
	}
	if sb.journal != ([17]uint32{}) {
		compat |= compatHasJournal
	}
	le.PutUint32(b[0x5C:], compat)
	le.PutUint32(b[0x60:], incompatFeatures)
	le.PutUint32(b[0x64:], roCompatFeatures)
	copy(b[0x68:0x78], s.uuid[:])
	copy(b[0x78:0x88], s.label[:])
	copy(b[0xEC:0xFC], s.hashSeed[:])
	b[0xFC] = 1 // s_def_hash_version: half_md4
	le.PutUint16(b[0xFE:], descSize)
	le.PutUint32(b[0x100:], 0x000C)      // s_default_mount_opts: user_xattr, acl
	le.PutUint32(b[0x108:], uint32(now)) // s_mkfs_time
	if sb.journal != ([17]uint32{}) {
		le.PutUint32(b[0xE0:], journalIno)
		b[0xFD] = 1 // s_jnl_backup_type: s_jnl_blocks holds the inode's blocks
		for i, v := range sb.journal {
			le.PutUint32(b[0x10C+4*i:], v)
		}
	}
	le.PutUint32(b[0x150:], uint32(p.blocks>>32))
	le.PutUint32(b[0x154:], uint32(p.reserved>>32))
	le.PutUint32(b[0x158:], uint32(sb.freeBlocks>>32))
	le.PutUint16(b[0x15C:], extraIsize) // s_min_extra_isize
	le.PutUint16(b[0x15E:], extraIsize) // s_want_extra_isize
	le.PutUint32(b[0x160:], 0x0001)     // s_flags: signed directory hash, as on x86
	b[0x174] = logFlex
	b[0x175] = 1 // s_checksum_type: crc32c
	le.PutUint32(b[0x248:], uint32(sb.overhead))
	b[0x274] = uint8(now >> 32) // s_wtime_hi
	b[0x276] = uint8(now >> 32) // s_mkfs_time_hi
	b[0x277] = uint8(now >> 32) // s_lastcheck_hi
	le.PutUint32(b[0x3FC:], crc32c(^uint32(0), b[:0x3FC]))
	return b
}

// unixTime is t in seconds since 1970, or 0 before it: superblock times
// are unsigned.
func unixTime(t time.Time) uint64 {
	return uint64(max(t.Unix(), 0))
}
