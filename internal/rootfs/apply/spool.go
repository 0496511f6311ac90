package apply

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/ferryvm/ferry/internal/rootfs/sparse"
)

const (
	spoolChunk = 4 << 20
	spoolStep  = 256 << 10
)

// spool holds one layer's decompressed file data for replay: in memory
// while the call's memory budget lasts, then in an unlinked temp file.
// Data that is all zeros stays a hole: a memory chunk that fills with
// zeros is given back (nil in chunks), and zero blocks are never written
// to the file. So a sparse file, or a file of zeros, costs its data only.
type spool struct {
	chunks  [][]byte // nil entries are chunks of zeros
	spare   []byte   // a zero chunk's buffer, budget still held, for reuse
	mem     int64    // bytes of the spool's offset space held in chunks
	file    *os.File
	hw      *sparse.Writer // the file part
	dir     string
	budget  *budget
	minFree int64
	size    int64
	zero    bool // the last chunk holds only zeros so far
}

// ReadFrom decompresses r into the spool until it ends: straight into
// memory chunks (no bounce buffer) while the budget lasts, then into the
// file.
func (s *spool) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for s.file == nil {
		if s.size == s.mem {
			if !s.grow() {
				break
			}
		}
		// Read in steps that stay in the CPU cache, to see zeros while
		// they are there.
		i := len(s.chunks) - 1
		start := s.size % spoolChunk
		if start == 0 {
			s.zero = true
		}
		c := s.chunks[i][start:min(start+spoolStep, spoolChunk)]
		n, err := io.ReadFull(r, c)
		s.zero = s.zero && sparse.AllZero(c[:n])
		s.size += int64(n)
		total += int64(n)
		if s.size%spoolChunk == 0 && n > 0 && s.zero {
			s.spare, s.chunks[i] = s.chunks[i], nil
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
	if s.file == nil {
		f, err := os.CreateTemp(s.dir, "flatten-*.spool")
		if err != nil {
			return total, fmt.Errorf("spool: %w", err)
		}
		_ = os.Remove(f.Name())
		s.file = f
		s.hw = sparse.NewWriter(f, s.minFree)
	}
	s.hw.SetPos(s.size - s.mem)
	buf := getBuf()
	defer putBuf(buf)
	n, err := io.CopyBuffer(s.hw, r, *buf)
	s.size += n
	return total + n, err
}

// grow adds a memory chunk, reusing a zero chunk's buffer; false when
// the memory budget is spent.
func (s *spool) grow() bool {
	c := s.spare
	s.spare = nil
	if c == nil {
		if s.budget.left.Add(-spoolChunk) < 0 {
			s.budget.left.Add(spoolChunk)
			return false
		}
		c = make([]byte, spoolChunk)
	}
	s.chunks = append(s.chunks, c)
	s.mem += spoolChunk
	return true
}

// Write appends p (tests and generic copies; ReadFrom is the fast path).
func (s *spool) Write(p []byte) (int, error) {
	n, err := s.ReadFrom(&onceReader{p: p})
	return int(n), err
}

type onceReader struct{ p []byte }

func (o *onceReader) Read(b []byte) (int, error) {
	if len(o.p) == 0 {
		return 0, io.EOF
	}
	n := copy(b, o.p)
	o.p = o.p[n:]
	return n, nil
}

func (s *spool) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for len(p) > 0 && off < min(s.mem, s.size) {
		c := s.chunks[off/spoolChunk]
		start := off % spoolChunk
		w := int(min(int64(len(p)), spoolChunk-start, s.size-off))
		if c == nil {
			clear(p[:w])
		} else {
			copy(p[:w], c[start:])
		}
		p, off, n = p[w:], off+int64(w), n+w
	}
	if len(p) == 0 {
		return n, nil
	}
	if s.file == nil || off >= s.size {
		return n, io.EOF
	}
	want := min(int64(len(p)), s.size-off)
	m, err := s.file.ReadAt(p[:want], off-s.mem)
	if err == io.EOF { // a trailing hole not yet covered by the file's size
		clear(p[m:want])
		m, err = int(want), nil
	}
	if n += m; err == nil && int64(len(p)) > want {
		err = io.EOF
	}
	return n, err
}

// Close frees the memory and the file.
func (s *spool) Close() error {
	held := int64(len(s.chunks)) * spoolChunk
	for _, c := range s.chunks {
		if c == nil {
			held -= spoolChunk
		}
	}
	if s.spare != nil {
		held += spoolChunk
	}
	s.budget.left.Add(held)
	s.chunks, s.spare = nil, nil
	if s.file != nil {
		return s.file.Close()
	}
	return nil
}

// bufs are the bounce buffers of copies to and from files: one per copy
// in flight, not one per file (a layer of many small files would churn
// the heap).
var bufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

func getBuf() *[]byte  { return bufs.Get().(*[]byte) }
func putBuf(b *[]byte) { bufs.Put(b) }

// section is a range of a spool that writes itself out without a bounce
// buffer where it is in memory.
type section struct {
	s      *spool
	off, n int64
}

func (sec section) WriteTo(w io.Writer) (int64, error) {
	var total int64
	off, end := sec.off, sec.off+sec.n
	for off < end && off < sec.s.mem {
		start := off % spoolChunk
		k := min(spoolChunk-start, end-off)
		var err error
		var n int
		if c := sec.s.chunks[off/spoolChunk]; c != nil {
			n, err = w.Write(c[start : start+k])
		} else {
			var m int64
			m, err = sparse.WriteZeros(w, k)
			n = int(m)
		}
		total += int64(n)
		off += int64(n)
		if err != nil {
			return total, err
		}
	}
	if off < end {
		buf := getBuf()
		n, err := io.CopyBuffer(w, io.NewSectionReader(sec.s, off, end-off), *buf)
		putBuf(buf)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// sectionReader is a section as an io.Reader, for backends that read it.
type sectionReader struct {
	*io.SectionReader
	sec section
}
