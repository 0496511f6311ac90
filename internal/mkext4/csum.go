package mkext4

import (
	"encoding/binary"
	"hash/crc32"
	"sync"
)

// castagnoli is made on first use, not at package init: ferry-init links
// this package and must not spend its boot building a table it only needs
// to format a blank disk.
var castagnoli = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

// crc32c continues a CRC-32C over p the way ext4 does (the kernel's
// crc32c_le): no inversion on the way in or out, so checksums chain by
// passing one as the next one's crc.
func crc32c(crc uint32, p []byte) uint32 {
	return ^crc32.Update(^crc, castagnoli(), p)
}

// crc32cU32 continues a CRC-32C over v as four little-endian bytes.
func crc32cU32(crc, v uint32) uint32 {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	return crc32c(crc, b[:])
}

// fsSeed is the seed of every metadata checksum: the CRC-32C of the UUID
// (s_checksum_seed is only stored when metadata_csum_seed is on).
func fsSeed(uuid [16]byte) uint32 { return crc32c(^uint32(0), uuid[:]) }

// inodeSeed is the seed of the checksums of an inode and of the blocks it
// owns (directory blocks, extent tree blocks): the inode number and
// generation chained onto the filesystem seed.
func inodeSeed(seed, ino, generation uint32) uint32 {
	return crc32cU32(crc32cU32(seed, ino), generation)
}
