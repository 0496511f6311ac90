package ext4

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
)

// MkfsArgs is the mkfs.ext4 command line MakeScratch runs for a scratch
// filesystem at path: lazy inode-table and journal init (the sparse
// file's holes read as zeros, so this is safe), no resize inode and no
// backup superblocks, so almost nothing is written.
func MkfsArgs(path string, size int64) []string {
	return []string{
		"mkfs.ext4", "-F", "-q", "-b", "4096", "-m", "0", "-L", "ferry-scratch",
		"-O", "^resize_inode,sparse_super2",
		"-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard,num_backup_sb=0",
		path, strconv.FormatInt(size/1024, 10) + "k",
	}
}

// MakeScratch creates a sparse file of size bytes at path and formats it
// as an empty ext4 filesystem.
func MakeScratch(ctx context.Context, path string, size int64) error {
	if size < 16<<20 || size%4096 != 0 {
		return fmt.Errorf("scratch size %d: must be a multiple of 4096 and at least 16 MiB", size)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	args := MkfsArgs(path, size)
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mkfs.ext4 %s: %w: %s", path, err, out)
	}
	return nil
}

// Resize grows the filesystem in the file at path to size bytes
// (resize2fs; the file is extended sparsely first).
func Resize(ctx context.Context, path string, size int64) error {
	if err := os.Truncate(path, size); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "resize2fs", "-f", path, strconv.FormatInt(size/4096, 10)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("resize2fs %s: %w: %s", path, err, out)
	}
	return nil
}
