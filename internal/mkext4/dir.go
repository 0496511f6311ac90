package mkext4

import "encoding/binary"

const (
	dirTailSize  = 12   // the fake entry at the end of a block that holds its checksum
	fileTypeDir  = 2    // directory entry file type: directory
	tailNameLen  = 0xDE // marks the fake entry as a checksum tail
	direntHeader = 8    // inode, rec_len, name_len, file_type
)

// dirent is a directory entry: a name for an inode (a directory: Format
// makes no other kind).
type dirent struct {
	ino  uint32
	name string
}

// dirBlock is one directory block of inode ino holding entries, the last
// one stretched to the checksum tail. With no entries the block holds one
// empty entry (inode 0) spanning it, as an unused directory block does.
func dirBlock(seed, ino uint32, entries []dirent) []byte {
	b := make([]byte, blockSize)
	le := binary.LittleEndian
	if len(entries) == 0 {
		entries = []dirent{{}}
	}
	off := 0
	for i, e := range entries {
		recLen := (direntHeader + len(e.name) + 3) &^ 3
		if i == len(entries)-1 {
			recLen = blockSize - dirTailSize - off
		}
		le.PutUint32(b[off:], e.ino)
		le.PutUint16(b[off+4:], uint16(recLen))
		b[off+6] = uint8(len(e.name))
		if e.ino != 0 {
			b[off+7] = fileTypeDir
		}
		copy(b[off+direntHeader:], e.name)
		off += recLen
	}
	tail := b[blockSize-dirTailSize:]
	le.PutUint16(tail[4:], dirTailSize)
	tail[7] = tailNameLen
	le.PutUint32(tail[8:], crc32c(inodeSeed(seed, ino, 0), b[:blockSize-dirTailSize]))
	return b
}

// rootBlock is the root directory's only block.
func rootBlock(seed uint32) []byte {
	return dirBlock(seed, rootIno, []dirent{{rootIno, "."}, {rootIno, ".."}, {lpfIno, "lost+found"}})
}

// lpfBlocksData is lost+found's lpfBlocks blocks: "." and ".." in the
// first, the rest empty, there so that e2fsck can reconnect files without
// allocating.
func lpfBlocksData(seed uint32) []byte {
	b := dirBlock(seed, lpfIno, []dirent{{lpfIno, "."}, {rootIno, ".."}})
	for range lpfBlocks - 1 {
		b = append(b, dirBlock(seed, lpfIno, nil)...)
	}
	return b
}
