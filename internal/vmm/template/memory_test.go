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
	"time"

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
	// The same process gets the same loaded memfd, each Get its own
	// descriptor of it.
	again, err := s2.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	if again.RAM == ram || inode(t, again.RAM) != inode(t, ram) {
		t.Errorf("second Get: descriptor shared %v, memfd reloaded %v", again.RAM == ram, inode(t, again.RAM) != inode(t, ram))
	}
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ram.ReadAt(b[:11], 0); err != nil {
		t.Errorf("closing one Get's RAM closed another's: %v", err)
	}
}

func inode(t *testing.T, f *os.File) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// A memfd no Get asked for in MemoryIdle is closed by the store (the next
// Get loads the file again); a descriptor a caller holds stays good.
func TestIdleMemoryIsReleased(t *testing.T) {
	s := open(t)
	now := time.Now()
	s.now = func() time.Time { return now }
	a, b := testKey(), testKey()
	b.Kernel = "other"
	for _, k := range []Key{a, b} {
		put, err := s.Put(context.Background(), k, writer([]byte("state")), testMemory(t))
		if err != nil {
			t.Fatal(err)
		}
		put.Close()
	}
	held, err := s.Get(a)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	before := inode(t, held.RAM)
	now = now.Add(MemoryIdle + time.Minute)
	if got, err := s.Get(b); err != nil { // sweeps a's memfd
		t.Fatal(err)
	} else {
		got.Close()
	}
	s.mu.Lock()
	_, kept := s.memories[filepath.Join(s.Dir(), a.ID())]
	s.mu.Unlock()
	if kept {
		t.Error("the idle template's memfd is still loaded")
	}
	buf := make([]byte, 11)
	if _, err := held.RAM.ReadAt(buf, 0); err != nil || string(buf) != "boot sector" {
		t.Errorf("a held RAM descriptor after the release: %q, %v", buf, err)
	}
	again, err := s.Get(a)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if inode(t, again.RAM) == before {
		t.Error("the released memfd was not loaded again")
	}
}
