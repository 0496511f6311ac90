package mkext4

import (
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// fillRandom overwrites the file at path (size bytes) with reproducible
// random bytes, all but its first 4 KiB, which it zeroes: a "blank"
// device as ferry-init sees one, with anything at all after that.
func fillRandom(t *testing.T, path string, size int64, seed uint64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.NewChaCha8([32]byte{byte(seed)})
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		n := min(int64(len(buf)), size-off)
		_, _ = rng.Read(buf[:n])
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			t.Fatal(err)
		}
	}
	zeroFirstBlock(t, f)
}

// zeroFirstBlock zeroes the first 4 KiB of f.
func zeroFirstBlock(t *testing.T, f *os.File) {
	t.Helper()
	if _, err := f.WriteAt(make([]byte, blockSize), 0); err != nil {
		t.Fatal(err)
	}
}

// TestFormatOverGarbage formats devices that are blank only in their first
// block: random bytes, or an old filesystem with files in it, whose inode
// tables, bitmaps and journal lie where the new one's do or do not.
func TestFormatOverGarbage(t *testing.T) {
	prereq.Tools(t, "e2fsck", "dumpe2fs", "mkfs.ext4", "debugfs")
	const MiB = 1 << 20
	for _, tc := range []struct {
		name    string
		size    int64
		prepare func(t *testing.T, path string, size int64)
	}{
		{"random 64MiB", 64 * MiB, func(t *testing.T, p string, s int64) { fillRandom(t, p, s, 1) }},
		{"random 200MiB+4KiB", 200*MiB + 4096, func(t *testing.T, p string, s int64) { fillRandom(t, p, s, 2) }},
		{"old ext4 same geometry", 256 * MiB, func(t *testing.T, p string, s int64) { oldFilesystem(t, p, "-b", "4096", "-T", "default") }},
		{"old ext4 1KiB blocks", 256 * MiB, func(t *testing.T, p string, s int64) { oldFilesystem(t, p, "-b", "1024") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := sparseFile(t, tc.size)
			tc.prepare(t, path, tc.size)
			formatFile(t, path, tc.size, Options{Label: "ferry-scratch"})
			fsck(t, path)
			if h := dumpe2fs(t, path); h["Filesystem volume name"] != "ferry-scratch" {
				t.Errorf("label %q, want ferry-scratch", h["Filesystem volume name"])
			}
		})
	}
}

// oldFilesystem makes an ext4 filesystem with mkfs.ext4 (fully
// initialised: inode tables and journal zeroed, then used), puts files in
// it, and zeroes its first block.
func oldFilesystem(t *testing.T, path string, mkfsArgs ...string) {
	t.Helper()
	args := append([]string{"-q", "-F", "-t", "ext4", "-E", "lazy_itable_init=0,lazy_journal_init=0"}, mkfsArgs...)
	runCmd(t, "mkfs.ext4", append(args, path)...)
	var cmds strings.Builder
	for _, d := range []string{"a", "b", "c"} {
		cmds.WriteString("mkdir " + d + "\n")
		for _, f := range []string{"1", "2", "3", "4", "5", "6", "7", "8"} {
			cmds.WriteString("write /etc/os-release " + d + "/" + f + "\n")
		}
	}
	script := path + ".cmds"
	if err := os.WriteFile(script, []byte(cmds.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	runCmd(t, "debugfs", "-w", "-f", script, path)
	fsck(t, path)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zeroFirstBlock(t, f)
}
