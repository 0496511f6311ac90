package template

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ferryvm/ferry/internal/vmm"
)

// A template key follows the kernel's content and the initramfs's shared
// prefix (a new kernel or ferry-init selects another template), not the
// per-machine files after that prefix; the layout counts too.
func TestSpecKeyFollowsKernelAndInit(t *testing.T) {
	dir := t.TempDir()
	kernel, initrd := filepath.Join(dir, "vmlinux"), filepath.Join(dir, "initrd.cpio")
	write := func(p string, b []byte) {
		t.Helper()
		// A new file (as an install renames one into place).
		tmp := p + ".new"
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
	}
	shared := make([]byte, InitPrefix+100)
	write(kernel, []byte("kernel one"))
	write(initrd, shared)
	spec := vmm.Spec{Kernel: kernel, Initrd: initrd, Cmdline: "ferry.warm=1", VCPUs: 1, MemoryMiB: 256,
		Drives: []vmm.Drive{{ID: "root", ReadOnly: true}, {ID: "scratch"}}, NICs: []vmm.NIC{{ID: "eth0"}}}
	info := VMMInfo{Name: "qemu", Version: "QEMU emulator version 7.2", Accel: "tcg", Control: "serial"}
	var h Hasher
	key := func() string {
		t.Helper()
		k, err := SpecKey(spec, info, &h)
		if err != nil {
			t.Fatal(err)
		}
		return k.ID()
	}
	first := key()
	if key() != first {
		t.Fatal("the same spec gives two keys")
	}
	tail := append([]byte(nil), shared...)
	tail[InitPrefix+50] = 1 // a run config after the shared archive
	write(initrd, tail)
	if key() != first {
		t.Error("the per-machine part of the initramfs changed the key")
	}
	write(kernel, []byte("kernel two"))
	second := key()
	if second == first {
		t.Error("a new kernel kept the key: an old template would be restored into it")
	}
	init2 := append([]byte(nil), tail...)
	init2[10] = 1 // another ferry-init
	write(initrd, init2)
	if key() == second {
		t.Error("a new ferry-init kept the key")
	}
	third := key()
	spec.Drives = spec.Drives[:1]
	if key() == third {
		t.Error("another drive layout kept the key")
	}
	spec.Drives, spec.MemoryMiB = []vmm.Drive{{ID: "root", ReadOnly: true}, {ID: "scratch"}}, 512
	if key() == third {
		t.Error("another memory size kept the key")
	}
	info.Version = "QEMU emulator version 8.2"
	spec.MemoryMiB = 256
	if key() == third {
		t.Error("another QEMU kept the key")
	}
}
