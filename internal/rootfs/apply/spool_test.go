package apply

import (
	"bytes"
	"io"
	"math/rand/v2"
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
