package kernel

import (
	"bytes"
	"fmt"
	"io/fs"
	"strconv"
)

// readEntry is one entry read back from an archive.
type readEntry struct {
	Name  string
	Mode  uint32
	Data  []byte
	Major uint32
	Minor uint32
}

// readCPIO parses concatenated newc archives the way Linux's initramfs
// unpacker does: zero padding between archives is skipped, each archive
// ends at TRAILER!!!.
func readCPIO(b []byte) ([]readEntry, error) {
	var out []readEntry
	off := 0
	for off < len(b) {
		if b[off] == 0 {
			if off%4 != 0 {
				return nil, fmt.Errorf("zero byte at unaligned offset %d", off)
			}
			off += 4
			continue
		}
		if off+110 > len(b) || string(b[off:off+6]) != newcMagic {
			return nil, fmt.Errorf("bad magic at %d", off)
		}
		field := func(i int) uint32 {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				panic(err)
			}
			return uint32(v)
		}
		mode, size, major, minor, namesize := field(1), field(6), field(9), field(10), field(11)
		nameStart := off + 110
		name := string(b[nameStart : nameStart+int(namesize)-1])
		dataStart := align4(nameStart + int(namesize))
		data := b[dataStart : dataStart+int(size)]
		off = align4(dataStart + int(size))
		if name == "TRAILER!!!" {
			continue
		}
		out = append(out, readEntry{Name: name, Mode: mode, Data: bytes.Clone(data), Major: major, Minor: minor})
	}
	return out, nil
}

func align4(n int) int { return (n + 3) &^ 3 }

// modeString renders a newc mode word for comparison in tests.
func modeString(m uint32) string {
	t := map[uint32]string{0o100000: "-", 0o040000: "d", 0o120000: "l", 0o020000: "c", 0o060000: "b"}[m&0o170000]
	return t + fs.FileMode(m & 0o777).String()[1:]
}
