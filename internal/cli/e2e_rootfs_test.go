package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/testimage"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// TestImageRootfsEndToEnd builds a base through the daemon, copies it out,
// and sees it in image inspect and system df.
func TestImageRootfsEndToEnd(t *testing.T) {
	prereq.Tools(t, "mkfs.ext4", "e2fsck")
	reg := testimage.Registry(t)
	ref := pushRandom(t, reg, "test/rootfs:v1", 7, 3, 64<<10)
	e := newFerryEnv(t)
	e.ok("pull", ref)

	path := strings.TrimSpace(e.ok("image", "rootfs", ref))
	if filepath.Dir(path) != filepath.Join(e.root, "rootfs", "bases") || !strings.HasSuffix(path, ".ext4") {
		t.Fatalf("base path %q", path)
	}
	if out, err := exec.Command("e2fsck", "-fn", path).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck -fn: %v\n%s", err, out)
	}
	if again := strings.TrimSpace(e.ok("image", "rootfs", ref)); again != path {
		t.Fatalf("second build at %q, want %q", again, path)
	}
	out := filepath.Join(t.TempDir(), "copy.ext4")
	e.ok("image", "rootfs", ref, "-o", out)
	a, _ := os.ReadFile(path)
	b, _ := os.ReadFile(out)
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatalf("-o copy differs (%d vs %d bytes)", len(a), len(b))
	}

	var inspected []struct {
		ID     string          `json:"id"`
		Rootfs *api.RootfsBase `json:"rootfs"`
	}
	if err := json.Unmarshal([]byte(e.ok("image", "inspect", ref)), &inspected); err != nil {
		t.Fatal(err)
	}
	if len(inspected) != 1 || inspected[0].Rootfs == nil || !inspected[0].Rootfs.Built || inspected[0].Rootfs.Size != int64(len(a)) {
		t.Fatalf("image inspect rootfs = %+v", inspected)
	}

	var df api.SystemDF
	if err := json.Unmarshal([]byte(e.ok("system", "df", "--format", "json")), &df); err != nil {
		t.Fatal(err)
	}
	if len(df.Images) != 1 || len(df.Bases) != 1 || df.Bases[0].Allocated == 0 || df.ContentBytes == 0 {
		t.Fatalf("system df = %+v", df)
	}
	if table := e.ok("system", "df"); !strings.Contains(table, "Rootfs bases") {
		t.Fatalf("system df table:\n%s", table)
	}
	e.fails([]string{"not found"}, "image", "rootfs", "nosuch/image:1")
}
