package apply

import (
	"bytes"
	"io"
	"math/rand/v2"
	"syscall"
	"testing"
)

// TestSpoolSpillsToFile writes past the memory budget and reads every
// range back.
func TestSpoolSpillsToFile(t *testing.T) {
	s := &spool{dir: t.TempDir(), budget: newBudget(2*spoolChunk, "spool memory", "bytes", "")}
	defer s.Close()
	want := make([]byte, 5*spoolChunk+12345)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range want {
		want[i] = byte(r.Uint32())
	}
	for p := want; len(p) > 0; {
		n := min(len(p), 1+r.IntN(3<<20))
		if _, err := s.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if s.file == nil || s.mem != 2*spoolChunk {
		t.Fatalf("mem %d, file %v: want 2 chunks in memory then a file", s.mem, s.file)
	}
	for range 200 {
		off := r.Int64N(int64(len(want)))
		n := r.Int64N(int64(len(want)) - off)
		got, err := io.ReadAll(io.NewSectionReader(s, off, n))
		if err != nil || !bytes.Equal(got, want[off:off+n]) {
			t.Fatalf("ReadAt(%d, %d): %v", off, n, err)
		}
	}
}

// TestSpoolReadFromAndWriteTo fills a spool with ReadFrom across the
// memory/file boundary and writes random sections back out.
func TestSpoolReadFromAndWriteTo(t *testing.T) {
	s := &spool{dir: t.TempDir(), budget: newBudget(spoolChunk, "spool memory", "bytes", "")}
	defer s.Close()
	want := make([]byte, 3*spoolChunk+777)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range want {
		want[i] = byte(r.Uint32())
	}
	n, err := s.ReadFrom(io.MultiReader(bytes.NewReader(want[:1000]), bytes.NewReader(want[1000:])))
	if err != nil || n != int64(len(want)) || s.size != n {
		t.Fatalf("ReadFrom = %d, %v (size %d)", n, err, s.size)
	}
	if s.file == nil || s.mem != spoolChunk {
		t.Fatalf("mem %d, file %v: want one chunk in memory then a file", s.mem, s.file)
	}
	for range 100 {
		off := r.Int64N(int64(len(want)))
		n := r.Int64N(int64(len(want)) - off)
		var buf bytes.Buffer
		if _, err := (section{s, off, n}).WriteTo(&buf); err != nil || !bytes.Equal(buf.Bytes(), want[off:off+n]) {
			t.Fatalf("WriteTo(%d, %d): %v", off, n, err)
		}
	}
}

// TestSpoolKeepsHoles spools a file of zeros with a little data, across
// the memory/file boundary: zero chunks give their memory back, zero
// blocks are never written to the file, and every byte reads back.
func TestSpoolKeepsHoles(t *testing.T) {
	s := &spool{dir: t.TempDir(), budget: newBudget(2*spoolChunk, "spool memory", "bytes", "")}
	defer s.Close()
	const size = 64 << 20
	// Chunks 0 and 3 hold data (the budget), the zero chunks between them
	// reuse one buffer, and the rest goes to the file.
	data := map[int64]string{5: "head", 3*spoolChunk + 7: "chunk 3", 9 * spoolChunk: "file", size - 4: "tail"}
	want := make([]byte, size)
	for off, d := range data {
		copy(want[off:], d)
	}
	n, err := s.ReadFrom(bytes.NewReader(want))
	if err != nil || n != size {
		t.Fatalf("ReadFrom = %d, %v", n, err)
	}
	held := 0
	for _, c := range s.chunks {
		if c != nil {
			held++
		}
	}
	if held != 2 || s.file == nil || s.mem != 4*spoolChunk {
		t.Fatalf("%d chunks held in memory, %d bytes of offsets, file %v: want the 2 chunks with data, then a file", held, s.mem, s.file)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(s.file.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 > 64<<10 {
		t.Fatalf("spool file allocates %d bytes for %d bytes of data", st.Blocks*512, 30)
	}
	got, err := io.ReadAll(io.NewSectionReader(s, 0, size))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back: %v (equal %v)", err, bytes.Equal(got, want))
	}
	var buf bytes.Buffer
	if _, err := (section{s, 0, size}).WriteTo(&buf); err != nil || !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("WriteTo: %v", err)
	}
}
