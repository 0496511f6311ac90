package mkext4

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// mke2fsConf is e2fsprogs 1.47's mke2fs.conf as far as ext4 on 4 KiB
// blocks goes, so that the comparison does not depend on the host's
// /etc/mke2fs.conf.
const mke2fsConf = `[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	enable_periodic_fsck = 0
	blocksize = 4096
	inode_size = 256
	inode_ratio = 16384

[fs_types]
	ext4 = {
		features = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	}
`

// volatile are the dumpe2fs -h fields that differ between any two
// filesystems, however made: identities, times and what they cover.
var volatile = []string{
	"Filesystem UUID", "Directory Hash Seed", "Checksum",
	"Filesystem created", "Last write time", "Last checked",
	"Lifetime writes", // mke2fs counts its own writes
}

// mkfs formats path with mkfs.ext4 as the package comment says Format
// matches, plus extra options.
func mkfs(t *testing.T, path string, extra ...string) {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "mke2fs.conf")
	if err := os.WriteFile(conf, []byte(mke2fsConf), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-q", "-F", "-t", "ext4", "-b", "4096", "-T", "default",
		"-O", "^resize_inode,sparse_super2",
		"-E", "lazy_itable_init=1,lazy_journal_init=1,num_backup_sb=0",
		"-L", "ferry-scratch"}, extra...)
	cmd := exec.Command("mkfs.ext4", append(args, path)...)
	cmd.Env = append(os.Environ(), "MKE2FS_CONFIG="+conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestMatchesMke2fs formats the same sizes with mkfs.ext4 and Format and
// compares everything dumpe2fs -h says but identities and times: block,
// inode, free and overhead counts, reserved blocks, features, flags,
// default mount options, hash, journal size and backup. Format's result
// must also be e2fsck-clean.
func TestMatchesMke2fs(t *testing.T) {
	prereq.Tools(t, "mkfs.ext4", "dumpe2fs", "e2fsck")
	const MiB, GiB = 1 << 20, 1 << 30
	for _, tc := range []struct {
		name string
		size int64
		opts Options
		mkfs []string
	}{
		{"16MiB", 16 * MiB, Options{}, nil},
		{"64MiB", 64 * MiB, Options{}, nil},
		{"129MiB+4KiB", 129*MiB + 4096, Options{}, nil},
		{"200MiB+4KiB", 200*MiB + 4096, Options{}, nil},
		{"last group kept", (65536 + 396) * 4096, Options{}, nil},
		{"last group dropped", (65536 + 395) * 4096, Options{}, nil},
		{"1GiB", 1 * GiB, Options{}, nil},
		{"8GiB", 8 * GiB, Options{}, nil},
		{"100GiB", 100 * GiB, Options{}, nil},
		{"200GiB", 200 * GiB, Options{}, nil},
		{"ratio 4096", 1 * GiB, Options{InodeRatio: 4096}, []string{"-i", "4096"}},
		{"ratio 1MiB", 8 * GiB, Options{InodeRatio: 1 << 20}, []string{"-i", "1048576"}},
		{"journal 64MiB", 1 * GiB, Options{JournalBlocks: 16384}, []string{"-J", "size=64"}},
		{"no journal", 1 * GiB, Options{JournalBlocks: -1}, []string{"-O", "^has_journal"}},
		// Longer than flex group 0's free space: steps over flex group
		// 1's bitmaps and inode tables, 21 extents in a leaf block.
		{"journal 2.5GiB", 16 * GiB, Options{JournalBlocks: 655360}, []string{"-J", "size=2560"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			theirs := sparseFile(t, tc.size)
			mkfs(t, theirs, tc.mkfs...)
			ours := sparseFile(t, tc.size)
			o := tc.opts
			o.Label = "ferry-scratch"
			formatFile(t, ours, tc.size, o)
			fsck(t, ours)

			want, got := dumpe2fs(t, theirs), dumpe2fs(t, ours)
			keys := make([]string, 0, len(want))
			for k := range want {
				keys = append(keys, k)
			}
			for k := range got {
				if _, ok := want[k]; !ok {
					keys = append(keys, k)
				}
			}
			slices.Sort(keys)
			for _, k := range keys {
				if slices.Contains(volatile, k) {
					continue
				}
				if want[k] != got[k] {
					t.Errorf("%s: Format gives %q, mkfs.ext4 %q", k, got[k], want[k])
				}
			}
			if len(want) < 30 {
				t.Fatalf("dumpe2fs -h of mkfs.ext4's filesystem has only %d fields: %v", len(want), want)
			}
		})
	}
}
