// Package sparse writes files in which blocks of zeros stay holes, and
// keeps the free space of the filesystem they are on above a reserve.
// Flatten's spool and the ext4 base writer use it, so that sparse files
// (and files of zeros) cost their data only, and no image fills a disk.
//
// It knows nothing about tar, layers or ext4.
package sparse

import (
	"fmt"
	"io"
	"os"

	"github.com/dustin/go-humanize"
	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// BlockSize is the granularity of holes: a block of zeros at a
// BlockSize-aligned offset of fresh space is skipped, not written.
const BlockSize = 4096

// checkEvery is how many written bytes pass between free-space checks.
const checkEvery = 64 << 20

var zeros [256 << 10]byte

// AllZero reports whether b holds only zeros.
func AllZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if string(b[:n]) != string(zeros[:n]) { // compiles to memequal, no copy
			return false
		}
		b = b[n:]
	}
	return true
}

// WriteZeros writes n zero bytes to w from a shared buffer.
func WriteZeros(w io.Writer, n int64) (int64, error) {
	var total int64
	for total < n {
		k, err := w.Write(zeros[:min(n-total, int64(len(zeros)))])
		total += int64(k)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Writer is an io.WriteSeeker (and io.Reader) over f. Blocks of zeros
// written past the furthest point written so far are left as holes;
// anything written below it is written as given, so rewriting earlier
// data stays correct. Finish sets the file's size.
type Writer struct {
	f       *os.File
	minFree int64
	pos     int64 // current offset
	end     int64 // furthest offset written or skipped
	written int64 // bytes really written
	checkAt int64
}

// NewWriter writes f from its offset 0. A write that would leave less
// than minFree bytes free on f's filesystem fails (checked every 64 MiB
// written); minFree 0 means AutoReserve of the filesystem, < 0 no check.
func NewWriter(f *os.File, minFree int64) *Writer {
	return &Writer{f: f, minFree: minFree}
}

// SetPos moves the write offset (as Seek from the start).
func (w *Writer) SetPos(off int64) { w.pos = off }

// Written is the number of bytes written to the file (holes excluded).
func (w *Writer) Written() int64 { return w.written }

func (w *Writer) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		// Where p crosses into fresh space, aligned, skip zero blocks.
		if w.pos >= w.end && w.pos%BlockSize == 0 && len(p) >= BlockSize && AllZero(p[:BlockSize]) {
			k := BlockSize
			for k+BlockSize <= len(p) && AllZero(p[k:k+BlockSize]) {
				k += BlockSize
			}
			p, n = p[k:], n+k
			w.advance(int64(k))
			continue
		}
		// Otherwise write up to the next zero block that could be skipped.
		k := w.dataRun(p)
		if err := w.check(int64(k)); err != nil {
			return n, err
		}
		m, err := w.f.WriteAt(p[:k], w.pos)
		w.written += int64(m)
		p, n = p[m:], n+m
		w.advance(int64(m))
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// dataRun is how much of p, from w.pos, to write before a skippable block.
func (w *Writer) dataRun(p []byte) int {
	k := 0
	if r := int(w.pos % BlockSize); r != 0 {
		k = min(len(p), BlockSize-r)
	}
	for k < len(p) {
		if w.pos+int64(k) >= w.end && k+BlockSize <= len(p) && AllZero(p[k:k+BlockSize]) {
			if k == 0 { // w.pos below end: write it as given
				k = BlockSize
				continue
			}
			break
		}
		k = min(len(p), k+BlockSize)
	}
	return k
}

func (w *Writer) advance(n int64) {
	w.pos += n
	w.end = max(w.end, w.pos)
}

// AutoReserve is the free space kept by default: 5% of the filesystem,
// at most 1 GiB.
func AutoReserve(fsBytes int64) int64 { return min(fsBytes/20, 1<<30) }

// check refuses a write that would cut into the free-space reserve.
func (w *Writer) check(n int64) error {
	if w.minFree < 0 || w.written+n < w.checkAt {
		return nil
	}
	w.checkAt = w.written + n + checkEvery
	var st unix.Statfs_t
	rc, err := w.f.SyscallConn()
	if err != nil {
		return nil
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fstatfs(int(fd), &st) }); err != nil || serr != nil {
		return nil //nolint:nilerr // no statfs, no check: the write itself reports a full disk
	}
	free := int64(st.Bavail) * st.Bsize //nolint:gosec // G115: block counts fit in int64
	keep := w.minFree
	if keep == 0 {
		keep = AutoReserve(int64(st.Blocks) * st.Bsize) //nolint:gosec // G115: as above
	}
	if free-n-checkEvery < keep {
		return fmt.Errorf("%s: its filesystem has %s free, and must keep %s (--layer-min-free): %w",
			w.f.Name(), humanize.IBytes(uint64(max(free, 0))), humanize.IBytes(uint64(keep)), errdefs.ErrUnavailable)
	}
	return nil
}

// Seek implements io.Seeker (io.SeekEnd is from the furthest offset).
func (w *Writer) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		off += w.pos
	case io.SeekEnd:
		off += w.end
	}
	if off < 0 {
		return w.pos, fmt.Errorf("seek to %d: %w", off, errdefs.ErrInvalidArgument)
	}
	w.pos = off
	return off, nil
}

// Read reads at the current offset; skipped blocks read as zeros.
func (w *Writer) Read(p []byte) (int, error) {
	if w.pos >= w.end {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), w.end-w.pos)]
	n, err := w.f.ReadAt(p, w.pos)
	if err == io.EOF { // a skipped tail beyond the file's size
		clear(p[n:])
		n, err = len(p), nil
	}
	w.pos += int64(n)
	return n, err
}

// Finish extends the file over a skipped tail, so its size is the
// furthest offset written or skipped.
func (w *Writer) Finish() error {
	st, err := w.f.Stat()
	if err != nil {
		return err
	}
	if st.Size() < w.end {
		if err := w.f.Truncate(w.end); err != nil {
			return fmt.Errorf("%s: %w", w.f.Name(), err)
		}
	}
	return nil
}
