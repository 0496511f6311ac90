package template

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// testMemory is a 1 MiB template RAM memfd with a few written pages (one
// of them zeros: a touched page that holds nothing).
func testMemory(t *testing.T) *os.File {
	t.Helper()
	m, err := NewMemory("test", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	for _, w := range []struct {
		off int64
		b   []byte
	}{{0, []byte("boot sector")}, {3 * pageSize, bytes.Repeat([]byte{0xab}, 2*pageSize)}, {50 * pageSize, make([]byte, pageSize)}, {1<<20 - 5, []byte("last!")}} {
		if _, err := m.WriteAt(w.b, w.off); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// A template's RAM is saved as a sparse file of its non-zero pages and
// handed back as a sealed memfd with the same bytes, which a VMM can map
// only privately: no write, shared writable mapping or resize gets
// through, and a private mapping's writes stay its own.
func TestMemory(t *testing.T) {
	s := open(t)
	k := testKey()
	src := testMemory(t)
	want := make([]byte, 1<<20)
	if _, err := src.ReadAt(want, 0); err != nil {
		t.Fatal(err)
	}
	put, err := s.Put(context.Background(), k, writer([]byte("device state")), src)
	if err != nil {
		t.Fatal(err)
	}
	if put.Memory == nil || put.Memory.Size != 1<<20 || put.Memory.Data != 4*pageSize {
		t.Fatalf("memory manifest = %+v, want 1 MiB with 4 pages of data", put.Memory)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(put.Dir, memoryName), &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 > 64<<10 {
		t.Errorf("memory file takes %d bytes on disk: not sparse", st.Blocks*512)
	}
	// Another daemon run loads and checks it again.
	s2, err := Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	got, err := s2.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	ram := got.RAM
	if ram == nil {
		t.Fatal("Get returned no RAM")
	}
	b := make([]byte, 1<<20)
	if _, err := ram.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Error("the loaded RAM differs from the saved one")
	}
	if _, err := ram.WriteAt([]byte("x"), 0); err == nil {
		t.Error("the template RAM took a write")
	}
	// As a VMM would open it: through /proc/self/fd, read-write.
	rw, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(ram.Fd())), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	if _, err := rw.WriteAt([]byte("x"), 0); !errors.Is(err, syscall.EPERM) {
		t.Errorf("write through a reopened descriptor = %v, want EPERM", err)
	}
	if err := rw.Truncate(2 << 20); err == nil {
		t.Error("the template RAM was resized")
	}
	if _, err := unix.Mmap(int(rw.Fd()), 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); !errors.Is(err, syscall.EPERM) {
		t.Errorf("shared writable mapping = %v, want EPERM", err)
	}
	priv, err := unix.Mmap(int(rw.Fd()), 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatalf("private mapping: %v", err)
	}
	defer unix.Munmap(priv)
	if !bytes.Equal(priv, want) {
		t.Error("the private mapping differs from the saved RAM")
	}
	copy(priv, "guest wrote this")
	if _, err := ram.ReadAt(b[:16], 0); err != nil || !bytes.Equal(b[:11], []byte("boot sector")) {
		t.Errorf("a private mapping's write reached the template RAM: %q", b[:16])
	}
	// The same process gets the same loaded memfd.
	again, err := s2.Get(k)
	if err != nil || again.RAM != ram {
		t.Errorf("second Get: %v, RAM reloaded: %v", err, again.RAM != ram)
	}
}
