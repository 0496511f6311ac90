package kernel

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// Header is one cpio entry. Name is relative to the archive root ("init",
// "lib/modules/ferry.order"); Size is the byte count the caller then writes
// for a regular file; Linkname is a symlink's target.
type Header struct {
	Name     string
	Mode     fs.FileMode // type bits (fs.ModeDir, fs.ModeSymlink, fs.ModeDevice|fs.ModeCharDevice) and permissions
	UID, GID int
	Size     int64
	Linkname string
	Major    uint32 // device number of a device node
	Minor    uint32
}

// Writer writes a cpio archive in the "newc" format (the SVR4 format without
// checksums, the one Linux's initramfs unpacker reads), in the manner of
// archive/tar: WriteHeader, then Write the file's bytes, then Close. Entries
// carry mtime 0 and inode numbers counted from 1, so the same entries give the
// same bytes.
type Writer struct {
	w      io.Writer
	n      int64 // bytes written so far
	ino    uint32
	remain int64 // file bytes the current entry still expects
	pad    int   // padding owed after the current file's data
	closed bool
}

// NewWriter returns a Writer that writes to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Offset is the number of bytes written to the underlying writer.
func (w *Writer) Offset() int64 { return w.n }

// ErrWriteTooLong is returned when more bytes are written than the header's Size.
var ErrWriteTooLong = errors.New("cpio: write too long")

const newcMagic = "070701"

// WriteHeader finishes the previous entry and starts a new one.
func (w *Writer) WriteHeader(h *Header) error {
	if w.closed {
		return errors.New("cpio: write after close")
	}
	if err := w.finishEntry(); err != nil {
		return err
	}
	name := strings.TrimPrefix(h.Name, "/")
	if name == "" || strings.ContainsRune(name, 0) {
		return fmt.Errorf("cpio: bad entry name %q", h.Name)
	}
	mode, size, body, err := encodeMode(h)
	if err != nil {
		return err
	}
	nlink := 1
	if h.Mode.IsDir() {
		nlink = 2
	}
	w.ino++
	hdr := fmt.Sprintf("%s%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		newcMagic, w.ino, mode, h.UID, h.GID, nlink, 0, size,
		0, 0, h.Major, h.Minor, len(name)+1, 0)
	if err := w.write([]byte(hdr + name + "\x00")); err != nil {
		return err
	}
	if err := w.write(zeros[:pad4(w.n)]); err != nil {
		return err
	}
	if body != nil { // symlink target
		if err := w.write(body); err != nil {
			return err
		}
		w.pad = pad4(w.n)
		return nil
	}
	w.remain = size
	w.pad = pad4(w.n + size)
	return nil
}

// Write writes file data of the current entry.
func (w *Writer) Write(p []byte) (int, error) {
	if int64(len(p)) > w.remain {
		n, err := w.Write(p[:w.remain])
		if err == nil {
			err = ErrWriteTooLong
		}
		return n, err
	}
	start := w.n
	err := w.write(p)
	n := int(w.n - start)
	w.remain -= int64(n)
	return n, err
}

// ReadFrom copies the current entry's data from r, letting io.Copy use the
// underlying writer's fast paths (copy_file_range between files).
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.Copy(w.w, io.LimitReader(r, w.remain))
	w.n += n
	w.remain -= n
	return n, err
}

// Close writes the trailer and pads the archive to a multiple of 512 bytes,
// so another archive can follow it. It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	if err := w.WriteHeader(&Header{Name: "TRAILER!!!"}); err != nil {
		return err
	}
	if err := w.finishEntry(); err != nil {
		return err
	}
	w.closed = true
	if r := w.n % 512; r != 0 {
		return w.write(make([]byte, 512-r))
	}
	return nil
}

func (w *Writer) finishEntry() error {
	if w.remain != 0 {
		return fmt.Errorf("cpio: entry %d short by %d bytes", w.ino, w.remain)
	}
	err := w.write(zeros[:w.pad])
	w.pad = 0
	return err
}

func (w *Writer) write(p []byte) error {
	n, err := w.w.Write(p)
	w.n += int64(n)
	return err
}

var zeros [4]byte

func pad4(n int64) int { return int((4 - n%4) % 4) }

// encodeMode returns the newc mode word, the data size and, for a symlink,
// its body.
func encodeMode(h *Header) (mode uint32, size int64, body []byte, err error) {
	perm := uint32(h.Mode.Perm())
	if h.Mode&fs.ModeSetuid != 0 {
		perm |= 0o4000
	}
	if h.Mode&fs.ModeSetgid != 0 {
		perm |= 0o2000
	}
	if h.Mode&fs.ModeSticky != 0 {
		perm |= 0o1000
	}
	switch {
	case h.Mode.IsRegular():
		if h.Size < 0 || h.Size > 0xffffffff {
			return 0, 0, nil, fmt.Errorf("cpio: %s: size %d out of range", h.Name, h.Size)
		}
		return 0o100000 | perm, h.Size, nil, nil
	case h.Mode.IsDir():
		return 0o040000 | perm, 0, nil, nil
	case h.Mode&fs.ModeSymlink != 0:
		if h.Linkname == "" {
			return 0, 0, nil, fmt.Errorf("cpio: symlink %s without target", h.Name)
		}
		return 0o120000 | perm, int64(len(h.Linkname)), []byte(h.Linkname), nil
	case h.Mode&fs.ModeCharDevice != 0:
		return 0o020000 | perm, 0, nil, nil
	case h.Mode&fs.ModeDevice != 0:
		return 0o060000 | perm, 0, nil, nil
	}
	return 0, 0, nil, fmt.Errorf("cpio: %s: unsupported mode %v", h.Name, h.Mode)
}
