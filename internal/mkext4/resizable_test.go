package mkext4

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// mkfsResizable formats path as Options.Resizable says it matches:
// mkfs.ext4 -O ^resize_inode (classic sparse_super backups).
func mkfsResizable(t *testing.T, path string) {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "mke2fs.conf")
	if err := os.WriteFile(conf, []byte(mke2fsConf), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-q", "-F", "-t", "ext4", "-b", "4096", "-T", "default", "-O", "^resize_inode",
		"-E", "lazy_itable_init=1,lazy_journal_init=1", "-L", "ferry-volume", path}
	cmd := exec.Command("mkfs.ext4", args...)
	cmd.Env = append(os.Environ(), "MKE2FS_CONFIG="+conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// superblockLines are dumpe2fs's lines placing the superblock copies and
// descriptor tables.
func superblockLines(t *testing.T, path string) []string {
	t.Helper()
	out := runCmd(t, "dumpe2fs", path)
	re := regexp.MustCompile(`(Primary|Backup) superblock at \d+, Group descriptors at \d+-\d+`)
	return re.FindAllString(out, -1)
}

// TestResizableMatchesMke2fs: with Resizable, Format writes what
// mkfs.ext4 -O ^resize_inode writes (dumpe2fs -h, and the superblock
// copies group by group, across the 3/5/7 powers 25, 27, 49 and 81), and
// e2fsck finds it clean (it checks the backups too).
func TestResizableMatchesMke2fs(t *testing.T) {
	prereq.Tools(t, "mkfs.ext4", "dumpe2fs", "e2fsck")
	const MiB, GiB = 1 << 20, 1 << 30
	for _, tc := range []struct {
		name string
		size int64
	}{
		{"64MiB", 64 * MiB},
		{"200MiB+4KiB", 200*MiB + 4096},
		{"1GiB", 1 * GiB},
		{"12GiB", 12 * GiB},
		{"100GiB", 100 * GiB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			theirs := sparseFile(t, tc.size)
			mkfsResizable(t, theirs)
			ours := sparseFile(t, tc.size)
			formatFile(t, ours, tc.size, Options{Label: "ferry-volume", Resizable: true})
			fsck(t, ours)
			want, got := dumpe2fs(t, theirs), dumpe2fs(t, ours)
			if leafOnly(t, tc.size) {
				// The journal, placed first-fit, steps over backups in
				// groups 1, 3, 5, ...: more extents than its inode holds,
				// so one more block (an extent leaf) than mke2fs's, which
				// sits in the middle of the disk.
				want["Free blocks"] = strconv.FormatUint(atou(t, want["Free blocks"])-1, 10)
			}
			for k, w := range want {
				if !slices.Contains(volatile, k) && got[k] != w {
					t.Errorf("%s: Format gives %q, mkfs.ext4 %q", k, got[k], w)
				}
			}
			if f := got["Filesystem features"]; strings.Contains(f, "sparse_super2") || !strings.Contains(f, "sparse_super") {
				t.Errorf("features %q", f)
			}
			if w, g := superblockLines(t, theirs), superblockLines(t, ours); !slices.Equal(w, g) {
				t.Errorf("superblock copies:\n%s\nmkfs.ext4:\n%s", strings.Join(g, "\n"), strings.Join(w, "\n"))
			}
		})
	}
}

// leafOnly reports whether Format gives the journal of a size-byte
// Resizable filesystem an extent leaf block.
func leafOnly(t *testing.T, size int64) bool {
	s, err := Options{Resizable: true}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	p, err := planFor(uint64(size)/blockSize, &s)
	if err != nil {
		t.Fatal(err)
	}
	return p.journalLeaf != 0
}
