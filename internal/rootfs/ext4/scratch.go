package ext4

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"

	"github.com/ferryvm/ferry/internal/mkext4"
)

// MakeScratch creates a sparse file of size bytes at path and formats it
// as an empty ext4 filesystem with internal/mkext4 — the formatter
// ferry-init uses for blank disks, so there is one — with a random UUID of
// its own (machines' scratch disks used to be clones of one mkfs.ext4
// template and all had the same UUID). mkext4 writes only metadata; the
// file stays sparse.
func MakeScratch(ctx context.Context, path string, size int64) (err error) {
	if size < 16<<20 || size%4096 != 0 {
		return fmt.Errorf("scratch size %d: must be a multiple of 4096 and at least 16 MiB", size)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	if err := f.Truncate(size); err != nil {
		return err
	}
	if err := mkext4.Format(f, size, mkext4.Options{Label: "ferry-scratch"}); err != nil {
		return fmt.Errorf("format scratch %s: %w", path, err)
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
