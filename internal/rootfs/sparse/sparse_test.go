package sparse

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestWriterHolesAndRewrites writes data, a long run of zeros and a
// zero tail (holes), then seeks back and writes zeros over data (which
// must land): the file reads back as written and allocates only data.
func TestWriterHolesAndRewrites(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := NewWriter(f, -1)
	want := make([]byte, 0, 40<<20)
	put := func(b []byte) {
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
		want = append(want, b...)
	}
	put(bytes.Repeat([]byte("d"), 10000)) // unaligned data
	put(make([]byte, 32<<20))             // holes after the partial block
	put([]byte("middle"))
	put(make([]byte, 8<<20)) // a hole to the end
	if _, err := w.Seek(4096, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 4096)); err != nil { // zeros over data: written
		t.Fatal(err)
	}
	clear(want[4096:8192])
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes (want %d), equal %v, %v", len(got), len(want), bytes.Equal(got, want), err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 > 64<<10 || w.Written() > 8*BlockSize {
		t.Fatalf("%d bytes allocated, %d written, for 10 KB of data", st.Blocks*512, w.Written())
	}
}
