package mkext4

import (
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

func TestFormatRejects(t *testing.T) {
	const MiB = 1 << 20
	for _, tc := range []struct {
		name string
		size int64
		opts Options
		want string // in the message
	}{
		{"too small", MinSize - 4096, Options{}, "outside"},
		{"zero size", 0, Options{}, "outside"},
		{"negative size", -1, Options{}, "outside"},
		{"too large", MaxSize + 4096, Options{}, "outside"},
		{"label too long", 64 * MiB, Options{Label: "seventeen-bytes!!"}, "label"},
		{"inode ratio too small", 64 * MiB, Options{InodeRatio: 1024}, "inode ratio"},
		{"inode ratio too large", 64 * MiB, Options{InodeRatio: 1 << 30}, "inode ratio"},
		{"journal too small", 64 * MiB, Options{JournalBlocks: 1023}, "journal"},
		{"journal too large", 64 * MiB, Options{JournalBlocks: maxJournalBlocks + 1}, "journal"},
		{"journal over half the disk", 64 * MiB, Options{JournalBlocks: 8192}, "half"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			err := Format(rec, tc.size, tc.opts)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Format = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if rec.bytes != 0 {
				t.Errorf("wrote %d bytes before failing", rec.bytes)
			}
		})
	}
}

// TestFormatRoundsDown formats a size that is not whole blocks: the
// filesystem takes the whole blocks, and nothing lands in the tail.
func TestFormatRoundsDown(t *testing.T) {
	prereq.Tools(t, "e2fsck", "dumpe2fs")
	const size = 64<<20 + 4095
	path := sparseFile(t, size)
	rec := formatFile(t, path, size, Options{})
	rec.checkBounds(t, size&^(blockSize-1))
	fsck(t, path)
	if got := dumpe2fs(t, path)["Block count"]; got != "16384" {
		t.Errorf("Block count %s, want 16384", got)
	}
}

// TestFormatMaxSize formats the largest device, 2^32 blocks, into a
// writer that keeps only the superblock, and checks its block count's
// high half and that every write is in bounds.
func TestFormatMaxSize(t *testing.T) {
	prereq.Short(t, "formats 16 TiB of metadata in memory")
	keep := &blockKeeper{block: 0}
	rec := &recorder{w: keep}
	if err := Format(rec, MaxSize, Options{}); err != nil {
		t.Fatal(err)
	}
	rec.checkBounds(t, MaxSize)
	sb := keep.data[superOffset:]
	lo, hi := binary.LittleEndian.Uint32(sb[0x04:]), binary.LittleEndian.Uint32(sb[0x150:])
	if got := uint64(hi)<<32 | uint64(lo); got != 1<<32 {
		t.Errorf("superblock block count %d, want %d", got, uint64(1)<<32)
	}
	t.Logf("16 TiB: %d writes, %s", len(rec.writes), mib(rec.bytes))
}

// blockKeeper is a device that drops every write but the one at a block.
type blockKeeper struct {
	block int64
	data  []byte
}

func (k *blockKeeper) WriteAt(p []byte, off int64) (int, error) {
	if off == k.block*blockSize {
		k.data = append([]byte(nil), p...)
	}
	return len(p), nil
}

var errDevice = errors.New("device on fire")

// failing is a device whose writes fail (or write short) where fail says,
// or whose Sync fails.
type failing struct {
	recorder
	fail     func(off int64) bool
	short    bool
	failSync bool
}

func (f *failing) WriteAt(p []byte, off int64) (int, error) {
	n, _ := f.recorder.WriteAt(p, off)
	switch {
	case f.fail == nil || !f.fail(off):
		return n, nil
	case f.short:
		return n / 2, nil
	}
	return 0, errDevice
}

func (f *failing) Sync() error {
	if f.failSync {
		return errDevice
	}
	return nil
}

// at is a fail function for the write at off.
func at(off int64) func(int64) bool { return func(o int64) bool { return o == off } }

func TestFormatWriterFails(t *testing.T) {
	const size = 1 << 30
	for _, tc := range []struct {
		name    string
		dev     *failing
		wantErr error
		want    string // in the message
	}{
		{"group descriptors", &failing{fail: at(blockSize)}, errDevice, "write group descriptors, block bitmaps"},
		{"short write", &failing{fail: at(blockSize), short: true}, io.ErrShortWrite, "group descriptors"},
		{"root directory", &failing{fail: func(off int64) bool { return off > 4096*blockSize }}, errDevice, "write root directory, lost+found, journal superblock (blocks 4114-4119)"},
		{"superblock", &failing{fail: at(0)}, errDevice, "write superblock (block 0)"},
		{"sync", &failing{failSync: true}, errDevice, "sync device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Format(tc.dev, size, Options{})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Format = %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if tc.dev.failSync {
				for _, w := range tc.dev.writes {
					if w.off < blockSize {
						t.Errorf("wrote the superblock although the sync before it failed")
					}
				}
			}
		})
	}
}

// TestSuperblockLast checks the write order that keeps an interrupted
// Format from leaving a device that looks formatted: everything, a sync,
// the superblock, a sync.
func TestSuperblockLast(t *testing.T) {
	rec := &recorder{}
	if err := Format(rec, 8<<30, Options{}); err != nil {
		t.Fatal(err)
	}
	ev := rec.events
	n := len(ev)
	if n < 4 || ev[n-3] != "sync" || ev[n-2] != "write 0" || ev[n-1] != "sync" {
		t.Fatalf("events end %q, want sync, write 0, sync", ev[max(n-4, 0):])
	}
	for _, e := range ev[:n-2] {
		if e == "write 0" {
			t.Errorf("block 0 written before the end: %q", ev)
		}
	}
}
