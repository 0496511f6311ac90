package inittest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBootBlankScratch: a blank (sparse, all-zero) scratch disk is
// formatted by init on the first boot, the entrypoint's writes land on it
// and survive a power-off (e2fsck clean), and the second boot mounts the
// same filesystem instead of formatting again.
func TestBootBlankScratch(t *testing.T) {
	t.Parallel()
	e := Setup(t)
	script := `#!/bin/sh
if [ -f /data/count ]; then echo "again $(cat /data/count)"; else echo first; fi
mkdir -p /data && echo boot >> /data/count
echo "upper-fs=$(grep ' /ferry/scratch \| / ' /proc/mounts | cut -d' ' -f3 | tr '\n' ' ')"
`
	base := e.Rootfs(t, map[string]string{"/entry.sh": script})
	scratch := filepath.Join(t.TempDir(), "scratch.raw")
	f, err := os.Create(scratch)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(256 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()

	boot := func(want string) string {
		t.Helper()
		cfg := baseConfig("/entry.sh")
		b := e.Start(t, cfg, Disks{Base: base, Scratch: scratch}, Options{})
		res, err := b.Wait()
		if err != nil {
			t.Fatalf("qemu: %v\n%s", err, res.Console)
		}
		if ex, ok := ConsoleExit(res.Console); !ok || ex.Code != 0 || ex.Failure != nil {
			t.Fatalf("exit %+v (found %v)\n%s", ex, ok, res.Console)
		}
		if !strings.Contains(res.Console, want) {
			t.Fatalf("console lacks %q:\n%s", want, res.Console)
		}
		if out, err := Fsck(scratch); err != nil {
			t.Fatalf("scratch not clean after power-off: %v\n%s", err, out)
		}
		return res.Console
	}
	first := boot("first")
	if !strings.Contains(first, "ferry-init: formatted blank scratch /dev/vdb (256 MiB, ext4)") {
		t.Errorf("first boot did not report formatting the scratch:\n%s", first)
	}
	if !strings.Contains(first, "upper-fs=overlay") {
		t.Errorf("root is not the overlay:\n%s", first)
	}
	out, err := exec.Command("dumpe2fs", "-h", scratch).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ferry-scratch") || !strings.Contains(string(out), "has_journal") {
		t.Errorf("dumpe2fs of the formatted scratch: %v\n%s", err, out)
	}
	second := boot("again boot")
	if strings.Contains(second, "formatted blank scratch") {
		t.Errorf("second boot formatted the scratch again:\n%s", second)
	}
}
