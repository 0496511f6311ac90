package rootfs

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// CloneMethod says how cloneFile copied a file.
type CloneMethod string

const (
	CloneReflink CloneMethod = "reflink"     // FICLONE: shared extents, copy-on-write
	CloneSparse  CloneMethod = "sparse-copy" // data segments only (SEEK_DATA/SEEK_HOLE)
)

// CloneFile makes dst (which must not exist) a copy of src, as cloneFile:
// volumes (internal/volume) clone their files and snapshots the same way.
func CloneFile(src, dst string, mode os.FileMode) (CloneMethod, error) {
	return cloneFile(src, dst, mode)
}

// cloneFile makes dst (which must not exist) a copy of src: a reflink
// where the filesystem supports it (XFS with reflink=1, btrfs), else a
// copy of src's data segments that keeps its holes.
func cloneFile(src, dst string, mode os.FileMode) (CloneMethod, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return "", err
	}
	method, err := cloneInto(in, out)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(dst)
		return "", fmt.Errorf("clone %s: %w", src, err)
	}
	return method, nil
}

func cloneInto(in, out *os.File) (CloneMethod, error) {
	if err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd())); err == nil {
		return CloneReflink, nil
	}
	st, err := in.Stat()
	if err != nil {
		return "", err
	}
	size := st.Size()
	if err := out.Truncate(size); err != nil {
		return "", err
	}
	ifd := int(in.Fd())
	var off int64
	for off < size {
		data, err := unix.Seek(ifd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			return "", fmt.Errorf("seek data: %w", err)
		}
		hole, err := unix.Seek(ifd, data, unix.SEEK_HOLE)
		if err != nil {
			return "", fmt.Errorf("seek hole: %w", err)
		}
		if err := copyRange(in, out, data, hole-data); err != nil {
			return "", err
		}
		off = hole
	}
	return CloneSparse, nil
}

// copyRange copies n bytes at off from in to out at the same offset,
// in the kernel where it can.
func copyRange(in, out *os.File, off, n int64) error {
	ioff, ooff := off, off
	for n > 0 {
		c, err := unix.CopyFileRange(int(in.Fd()), &ioff, int(out.Fd()), &ooff, int(min(n, 1<<30)), 0)
		if err != nil || c == 0 {
			// Fall back to a userspace copy of what is left.
			_, err := io.Copy(io.NewOffsetWriter(out, ooff), io.NewSectionReader(in, ioff, n))
			return err
		}
		n -= int64(c)
	}
	return nil
}
