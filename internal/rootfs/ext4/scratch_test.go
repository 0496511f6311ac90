package ext4

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// TestScratchDisksDiffer: every scratch disk is its own filesystem (a
// fresh UUID), clean by e2fsck, sparse.
func TestScratchDisksDiffer(t *testing.T) {
	dir := t.TempDir()
	const size = 8 << 30
	var uuids [][]byte
	for _, n := range []string{"a.ext4", "b.ext4"} {
		p := filepath.Join(dir, n)
		if err := MakeScratch(context.Background(), p, size); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		sb := make([]byte, 1024)
		if _, err := f.ReadAt(sb, 1024); err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if sb[0x38] != 0x53 || sb[0x39] != 0xef {
			t.Fatalf("%s: no ext4 superblock magic", n)
		}
		if st.Blocks*512 > 64<<20 {
			t.Errorf("%s: %d bytes allocated for an empty 8 GiB scratch", n, st.Blocks*512)
		}
		uuids = append(uuids, bytes.Clone(sb[0x68:0x78]))
		if fsck, err := exec.LookPath("e2fsck"); err == nil {
			if out, err := exec.Command(fsck, "-fn", p).CombinedOutput(); err != nil {
				t.Errorf("e2fsck -fn %s: %v\n%s", n, err, out)
			}
		}
	}
	if bytes.Equal(uuids[0], uuids[1]) {
		t.Errorf("two scratch disks share the UUID %x", uuids[0])
	}
}
