package apply

import (
	"fmt"
	"io"
	"os"
)

const spoolChunk = 4 << 20

// spool holds one layer's decompressed file data for replay: in memory
// while the call's memory budget lasts, then in an unlinked temp file.
type spool struct {
	chunks [][]byte
	mem    int64 // bytes held in chunks
	file   *os.File
	dir    string
	budget *budget
	size   int64
}

func (s *spool) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if s.file != nil {
			w, err := s.file.WriteAt(p, s.size-s.mem)
			n += w
			s.size += int64(w)
			return n, err
		}
		if s.size == int64(len(s.chunks))*spoolChunk {
			if s.budget.left.Add(-spoolChunk) < 0 {
				s.budget.left.Add(spoolChunk)
				f, err := os.CreateTemp(s.dir, "flatten-*.spool")
				if err != nil {
					return n, fmt.Errorf("spool: %w", err)
				}
				_ = os.Remove(f.Name())
				s.file = f
				continue
			}
			s.chunks = append(s.chunks, make([]byte, spoolChunk))
		}
		c := s.chunks[len(s.chunks)-1]
		w := copy(c[s.size%spoolChunk:], p)
		p = p[w:]
		n += w
		s.size += int64(w)
		s.mem += int64(w)
	}
	return n, nil
}

func (s *spool) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for len(p) > 0 && off < s.mem {
		c := s.chunks[off/spoolChunk][off%spoolChunk:]
		if rem := s.mem - off; int64(len(c)) > rem {
			c = c[:rem]
		}
		w := copy(p, c)
		p, off, n = p[w:], off+int64(w), n+w
	}
	if len(p) == 0 {
		return n, nil
	}
	if s.file == nil || off >= s.size {
		return n, io.EOF
	}
	m, err := s.file.ReadAt(p, off-s.mem)
	return n + m, err
}

// Close frees the memory and the file.
func (s *spool) Close() error {
	s.budget.left.Add(int64(len(s.chunks)) * spoolChunk)
	s.chunks = nil
	if s.file != nil {
		return s.file.Close()
	}
	return nil
}

// ReadFrom decompresses straight into the spool's memory (no bounce
// buffer) until r ends.
func (s *spool) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		if s.file != nil || s.size == int64(len(s.chunks))*spoolChunk {
			if s.file == nil && s.budget.left.Add(-spoolChunk) >= 0 {
				s.chunks = append(s.chunks, make([]byte, spoolChunk))
			} else {
				if s.file == nil {
					s.budget.left.Add(spoolChunk)
				}
				// Out of memory budget: the generic copy goes to the file.
				n, err := io.CopyBuffer(struct{ io.Writer }{s}, r, make([]byte, 1<<20))
				return total + n, err
			}
		}
		c := s.chunks[len(s.chunks)-1][s.size%spoolChunk:]
		n, err := r.Read(c)
		s.size += int64(n)
		s.mem += int64(n)
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

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
		c := sec.s.chunks[off/spoolChunk][off%spoolChunk:]
		if rem := min(end, sec.s.mem) - off; int64(len(c)) > rem {
			c = c[:rem]
		}
		n, err := w.Write(c)
		total += int64(n)
		off += int64(n)
		if err != nil {
			return total, err
		}
	}
	if off < end {
		n, err := io.Copy(w, io.NewSectionReader(sec.s, off, end-off))
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
