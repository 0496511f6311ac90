package kernel

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// fakeLib lays out an install directory with ferry-init and Debian's
// fallback kernel (its modules listed as tiny files), and returns it.
func fakeLib(t *testing.T) string {
	t.Helper()
	lib := t.TempDir()
	touch(t, filepath.Join(lib, InitName))
	touch(t, filepath.Join(lib, FallbackDir, "vmlinuz"))
	mods := filepath.Join(lib, FallbackDir, "lib", "modules", "6.1.0-test")
	var dep strings.Builder
	for _, m := range FallbackModules {
		rel := "kernel/" + m + ".ko"
		touch(t, filepath.Join(mods, rel))
		dep.WriteString(rel + ":\n")
	}
	if err := os.WriteFile(filepath.Join(mods, "modules.dep"), []byte(dep.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return lib
}

// installVmlinux puts an ELF file (this host's /bin/true stands in for a
// kernel) at lib/vmlinux, through a rename as scripts/kernel.sh does; with
// truncate only its first KiB.
func installVmlinux(t *testing.T, lib string, truncate bool) {
	t.Helper()
	prereq.File(t, "/bin/true", prereq.Remedy("true"))
	b, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if truncate {
		b = b[:1024]
	}
	tmp := filepath.Join(lib, Vmlinux+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(lib, Vmlinux)); err != nil {
		t.Fatal(err)
	}
}

func TestSelect(t *testing.T) {
	lib := fakeLib(t)
	opts := []Option{env(map[string]string{EnvLib: lib})}
	g, err := Select(opts...)
	if err != nil || !g.Fallback || g.Path != filepath.Join(lib, FallbackDir, "vmlinuz") || len(g.Modules) != len(FallbackModules) {
		t.Fatalf("without a built kernel: %+v, %v; want the fallback with its modules", g, err)
	}
	installVmlinux(t, lib, true)
	if g, err := Select(opts...); err != nil || !g.Fallback {
		t.Errorf("with a truncated vmlinux: %+v, %v; want the fallback", g, err)
	}
	installVmlinux(t, lib, false)
	if g, err := Select(opts...); err != nil || g.Fallback || g.Path != filepath.Join(lib, Vmlinux) || g.Modules != nil {
		t.Errorf("with a built kernel: %+v, %v; want it, without modules", g, err)
	}
	if _, err := Select(env(map[string]string{EnvLib: t.TempDir()})); err == nil || !strings.Contains(err.Error(), "make kernel") {
		t.Errorf("with no kernel at all: %v; want an error naming the remedy", err)
	}
}

// TestAssetsNoticeAnInstalledKernel: a daemon that boots the fallback
// kernel boots the built one from the first start after it is installed,
// with a shared archive that no longer carries the modules.
func TestAssetsNoticeAnInstalledKernel(t *testing.T) {
	lib := fakeLib(t)
	a := NewAssets(filepath.Join(t.TempDir(), "cache"), nil, env(map[string]string{EnvLib: lib}))
	ctx := context.Background()
	files := map[string][]byte{"/ferry/config.json": []byte("{}")}
	prepare := func() (Boot, []string) {
		t.Helper()
		dir := t.TempDir()
		b, err := a.Prepare(ctx, dir, files)
		if err != nil {
			t.Fatal(err)
		}
		if b.Initrd != filepath.Join(dir, "initrd.cpio") {
			t.Fatalf("initrd %s, want it in the machine dir", b.Initrd)
		}
		return b, archiveNames(t, b.Initrd)
	}
	hasModules := func(names []string) bool {
		for _, n := range names {
			if strings.HasSuffix(n, "virtio_blk.ko") {
				return true
			}
		}
		return false
	}
	b, names := prepare()
	if b.Kernel != filepath.Join(lib, FallbackDir, "vmlinuz") || !b.ACPI || !hasModules(names) {
		t.Fatalf("first start %+v (%d entries): want the fallback kernel, ACPI, modules", b, len(names))
	}
	again, _ := prepare()
	if again != (Boot{Kernel: b.Kernel, Initrd: again.Initrd, ACPI: true}) {
		t.Errorf("second start %+v, want the same kernel", again)
	}
	installVmlinux(t, lib, false)
	b, names = prepare()
	if b.Kernel != filepath.Join(lib, Vmlinux) || b.ACPI || hasModules(names) {
		t.Errorf("start after the install %+v (%v): want the built kernel, no ACPI, no modules", b, names)
	}
	shared, _ := filepath.Glob(filepath.Join(a.dir, "shared-*.cpio"))
	if len(shared) != 1 {
		t.Errorf("shared archives in the cache %v, want the current one only", shared)
	}
}

// archiveNames lists the entry names of the concatenated cpio archives in
// path.
func archiveNames(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	es, err := readCPIO(b)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name)
	}
	return out
}
