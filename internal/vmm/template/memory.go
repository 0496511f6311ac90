package template

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// A template's guest RAM (docs/warm-starts.md): the template VMM maps a
// memfd shared (NewMemory), so its saved state holds no RAM; Put copies
// the memfd's touched pages into the template's sparse "memory" file; a
// restore maps a sealed memfd of that file privately (Store.Memory), so
// every restored machine of one template shares the pages it has not
// written.

const memoryName = "memory"

// pageSize is the granule memoryHash and copies look at.
const pageSize = 4096

// NewMemory returns an empty memfd of size bytes, sealable, for a
// template VMM to map shared as its guest RAM.
func NewMemory(name string, size int64) (*os.File, error) {
	fd, err := unix.MemfdCreate("ferry-template-"+name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("template memory: memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "ferry-template-"+name)
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, fmt.Errorf("template memory: %w", err)
	}
	return f, nil
}

// extents calls fn for each data extent of f (SEEK_DATA/SEEK_HOLE): the
// pages a VMM touched; holes read as zeros.
func extents(f *os.File, size int64, fn func(off, n int64) error) error {
	fd := int(f.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return nil // no data after off
		}
		if err != nil {
			return fmt.Errorf("seek data: %w", err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("seek hole: %w", err)
		}
		hole = min(hole, size)
		if err := fn(data, hole-data); err != nil {
			return err
		}
		off = hole
	}
	return nil
}

// pages calls fn with each non-zero page of f (holes and zero pages are
// skipped): what both the copy and the checksum look at, so neither
// depends on how a file system lays the file out.
func pages(f *os.File, size int64, fn func(off int64, page []byte) error) error {
	buf := make([]byte, 256*pageSize)
	zero := make([]byte, pageSize)
	return extents(f, size, func(off, n int64) error {
		for n > 0 {
			m := min(n, int64(len(buf)))
			if _, err := f.ReadAt(buf[:m], off); err != nil && !(errors.Is(err, io.EOF) && m > 0) {
				return fmt.Errorf("read: %w", err)
			}
			for p := int64(0); p < m; p += pageSize {
				pg := buf[p:min(p+pageSize, m)]
				if bytes.Equal(pg, zero[:len(pg)]) {
					continue
				}
				if err := fn(off+p, pg); err != nil {
					return err
				}
			}
			off, n = off+m, n-m
		}
		return nil
	})
}

// copyMemory writes src's non-zero pages into dst (an empty file, sized to
// size: the rest stays holes) and returns their checksum.
func copyMemory(dst, src *os.File, size int64) (sum string, data int64, err error) {
	if err := dst.Truncate(size); err != nil {
		return "", 0, err
	}
	h := sha256.New()
	var hdr [8]byte
	err = pages(src, size, func(off int64, pg []byte) error {
		binary.BigEndian.PutUint64(hdr[:], uint64(off))
		h.Write(hdr[:])
		h.Write(pg)
		data += int64(len(pg))
		_, err := dst.WriteAt(pg, off)
		return err
	})
	if err != nil {
		return "", 0, fmt.Errorf("copy memory: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), data, nil
}

// sealedMemory loads the memory file at path into a new memfd and seals it
// against any write, resize or further seal: a VMM may then map it only
// privately (copy-on-write), and nothing, not a VMM running as root
// either, can change the pages the machines of the template share.
// It returns the checksum of what it loaded (memoryHash's).
func sealedMemory(path, name string, size int64) (*os.File, string, error) {
	src, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", errors.New("memory file missing")
		}
		return nil, "", err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return nil, "", err
	}
	if fi.Size() != size {
		return nil, "", fmt.Errorf("memory is %d bytes, the manifest says %d (truncated)", fi.Size(), size)
	}
	m, err := NewMemory(name, size)
	if err != nil {
		return nil, "", err
	}
	sum, _, err := copyMemory(m, src, size)
	if err != nil {
		m.Close()
		return nil, "", err
	}
	// The file's pages are not needed once copied.
	_ = unix.Fadvise(int(src.Fd()), 0, 0, unix.FADV_DONTNEED)
	if _, err := unix.FcntlInt(m.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_WRITE|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		m.Close()
		return nil, "", fmt.Errorf("seal template memory: %w: %w", err, errdefs.ErrUnavailable)
	}
	return m, sum, nil
}
