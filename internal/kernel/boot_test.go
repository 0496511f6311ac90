package kernel_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/kernel"
	"github.com/ferryvm/ferry/internal/kernel/boottest"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
	"github.com/ferryvm/ferry/internal/testutil/prereq/vmprereq"
)

// requireBoot skips unless a real boot can run: not -short, QEMU present.
func requireBoot(t *testing.T) {
	t.Helper()
	prereq.Short(t, "boots a VM")
	prereq.QEMU(t)
}

// bootWithConfig boots kernelPath with a busybox /init and a per-machine
// archive holding a run config, and checks the guest read that config.
func bootWithConfig(t *testing.T, kernelPath, modulesDir string, modules []string) boottest.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	vmprereq.Busybox(t)
	sh, err := boottest.BusyboxShared(dir, []string{"/ferry/run.json"}, modulesDir, modules)
	if err != nil {
		t.Fatal(err)
	}
	shared, err := kernel.BuildShared(ctx, dir, sh)
	if err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(dir, "initrd.cpio")
	const cfg = `{"hello":"from the per-machine archive"}`
	if err := kernel.WriteInitrd(ctx, initrd, shared, map[string][]byte{"/ferry/run.json": []byte(cfg)}); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := boottest.Run(ctx, boottest.Config{Kernel: kernelPath, Initrd: initrd, Extra: []string{
		"-drive", "if=none,id=d0,format=raw,file=" + disk, "-device", "virtio-blk-device,drive=d0",
		"-device", "virtio-serial-device", "-device", "virtio-rng-device",
	}})
	if err != nil {
		t.Fatalf("boot: %v\nconsole:\n%s", err, res.Console)
	}
	if !slices.Contains(res.Markers, "file /ferry/run.json="+cfg) || !slices.Contains(res.Markers, "done") {
		t.Fatalf("guest did not read the per-machine run config; markers %q\nconsole:\n%s", res.Markers, res.Console)
	}
	sawDrivers := false
	for _, m := range res.Markers {
		if strings.Contains(m, "failed") {
			t.Errorf("guest: %s", m)
		}
		if d, ok := strings.CutPrefix(m, "virtio-drivers"); ok {
			sawDrivers = true
			got := strings.Fields(d)
			slices.Sort(got)
			if want := []string{"virtio_blk", "virtio_console", "virtio_rng"}; !slices.Equal(got, want) {
				t.Errorf("virtio devices bound to drivers %q, want %q (virtio-mmio discovery)", got, want)
			}
		}
	}
	if !sawDrivers {
		t.Errorf("guest did not report its virtio drivers; markers %q", res.Markers)
	}
	t.Logf("wall %v, first init output %v, init exec at %v guest time, init uptimes %v",
		res.Wall.Round(time.Millisecond), res.FirstMarker.Round(time.Millisecond), res.InitExec, res.Uptimes)
	return res
}

func TestBootBuiltKernel(t *testing.T) {
	requireBoot(t)
	for _, name := range []string{kernel.Vmlinux, kernel.BzImage} {
		t.Run(name, func(t *testing.T) {
			bootWithConfig(t, vmprereq.BuiltKernel(t, name), "", nil)
		})
	}
}

func TestBootFallbackKernel(t *testing.T) {
	requireBoot(t)
	fb := vmprereq.FallbackKernel(t)
	mods, err := kernel.ModuleClosure(fb.ModulesDir, kernel.FallbackModules)
	if err != nil {
		t.Fatal(err)
	}
	res := bootWithConfig(t, fb.Kernel, fb.ModulesDir, mods)
	if len(res.Uptimes) < 2 {
		t.Errorf("modules were not loaded: markers %q", res.Markers)
	}
}
