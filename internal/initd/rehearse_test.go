package initd

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ferryvm/ferry/internal/mkext4"
)

// A rehearsal mounts a spare's disks only when they hold ext4 (the
// placeholders the daemon formats): never a blank or foreign disk.
func TestIsExt4(t *testing.T) {
	dir := t.TempDir()
	blank, fs := filepath.Join(dir, "blank"), filepath.Join(dir, "ext4")
	for _, p := range []string{blank, fs} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, 16<<20); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.OpenFile(fs, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := mkext4.Format(f, 16<<20, mkext4.Options{JournalBlocks: -1}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if !isExt4(fs) {
		t.Error("an mkext4 file system is not seen as ext4")
	}
	if isExt4(blank) || isExt4(filepath.Join(dir, "missing")) {
		t.Error("a blank or missing disk is seen as ext4")
	}
}
