package qemu_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/kernel"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
	"github.com/ferryvm/ferry/internal/vmm"
	"github.com/ferryvm/ferry/internal/vmm/qemu"
)

// shareInit mounts two virtio-fs shares (rw and ro), reports what it sees,
// writes into the rw one (owned by 1234:5678, mode 0640) and tries the ro
// one, then reboots.
const shareInit = `#!/bin/busybox sh
export PATH=/bin
busybox mount -t proc proc /proc
busybox mount -t sysfs sysfs /sys
busybox mount -t devtmpfs dev /dev
if [ -f /lib/modules/ferry.order ]; then
  while read m; do busybox insmod "$m" || echo "SHARE insmod $m failed"; done </lib/modules/ferry.order
fi
busybox mkdir -p /rw /ro
busybox mount -t virtiofs rw /rw && echo "SHARE mounted rw"
busybox mount -t virtiofs -o ro ro /ro && echo "SHARE mounted ro"
echo "SHARE host=$(busybox cat /rw/from-host) owner=$(busybox stat -c %u:%g:%a /rw/from-host)"
echo from-guest > /rw/from-guest
busybox chown 1234:5678 /rw/from-guest
busybox chmod 0640 /rw/from-guest
echo "SHARE ro=$(busybox cat /ro/file)"
busybox mount -o remount,rw /ro
if echo x > /ro/written 2>/dev/null; then echo "SHARE ro-written"; else echo "SHARE ro-refused"; fi
busybox sync
busybox umount /rw
busybox reboot -f
`

// TestBootShares: the driver starts a virtiofsd per share beside QEMU; the
// guest reads the host's files with their owners and modes, its writes
// (owner and mode too) appear on the host, and a read-only share stays
// read-only even when the guest remounts it read-write (enforced by the
// host). The helpers are gone once QEMU exits.
func TestBootShares(t *testing.T) {
	gk, bb := requireQEMUBoot(t)
	prereq.Root(t, "virtiofsd runs as root to keep owners and modes")
	d := qemu.New()
	if _, err := d.Plan(vmm.Spec{ID: "probe", Dir: "/tmp", Kernel: "k", VCPUs: 1, MemoryMiB: 64, ConsoleLog: "c", Control: vmm.Control{Socket: "s"},
		Shares: []vmm.Share{{Tag: "x", Source: "/"}}}); err != nil {
		prereq.Missing(t, "virtiofsd ("+err.Error()+")", "run scripts/deps.sh (Debian 12: qemu-system-common, Debian 13: virtiofsd)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	initPath := filepath.Join(dir, "init.sh")
	if err := os.WriteFile(initPath, []byte(shareInit), 0o755); err != nil {
		t.Fatal(err)
	}
	mods := gk.modules
	if gk.modulesDir != "" {
		extra, err := kernel.ModuleClosure(gk.modulesDir, []string{"virtiofs"})
		if err != nil {
			t.Fatal(err)
		}
		mods = append(mods, extra...)
	}
	initrd, err := kernel.BuildShared(ctx, dir, kernel.Shared{Init: initPath, ModulesDir: gk.modulesDir, Modules: mods, Files: []kernel.Entry{
		{Header: kernel.Header{Name: "bin", Mode: fs.ModeDir | 0o755}},
		{Header: kernel.Header{Name: "bin/busybox", Mode: 0o755}, Source: bb},
	}})
	if err != nil {
		t.Fatal(err)
	}
	rw, ro := filepath.Join(dir, "rw"), filepath.Join(dir, "ro")
	for _, p := range []string{rw, ro} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(rw, "from-host"), []byte("hello"), 0o604); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(rw, "from-host"), 42, 43); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ro, "file"), []byte("readonly"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := vmm.Spec{
		ID: "shares", Dir: dir, Kernel: gk.path, Initrd: initrd, ACPI: gk.acpi,
		VCPUs: 1, MemoryMiB: 128,
		Shares:     []vmm.Share{{Tag: "rw", Source: rw}, {Tag: "ro", Source: ro, ReadOnly: true}},
		Control:    vmm.Control{Socket: filepath.Join(dir, "control.sock")},
		ConsoleLog: filepath.Join(dir, "console.log"),
	}
	proc, err := d.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proc.Kill(); <-proc.Done(); vmm.ReapHelpers(context.Background(), spec) })
	if _, err := proc.Wait(ctx); err != nil {
		t.Fatalf("guest did not end: %v\nconsole:\n%s\nvmm log:\n%s", err, readFile(spec.ConsoleLog), readFile(spec.VMMLogPath()))
	}
	console := readFile(spec.ConsoleLog)
	for _, want := range []string{"SHARE mounted rw", "SHARE mounted ro", "SHARE host=hello owner=42:43:604", "SHARE ro=readonly", "SHARE ro-refused"} {
		if !strings.Contains(console, want) {
			t.Errorf("console lacks %q:\n%s\nvmm log:\n%s", want, console, readFile(spec.VMMLogPath()))
		}
	}
	fi, err := os.Stat(filepath.Join(rw, "from-guest"))
	if err != nil {
		t.Fatalf("the guest's file is not on the host: %v", err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 1234 || st.Gid != 5678 || fi.Mode().Perm() != 0o640 {
		t.Errorf("the guest's file on the host: %d:%d %v, want 1234:5678 -rw-r-----", st.Uid, st.Gid, fi.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(ro, "written")); err == nil {
		t.Error("the guest wrote into the read-only share")
	}
	// virtiofsd exits when QEMU disconnects; nothing is left to reap.
	deadline := time.Now().Add(10 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "helper-*.pid"))
		if len(files) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("helper pid files left after QEMU exited: %v", files)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := vmm.ReapHelpers(ctx, spec); n != 0 {
		t.Errorf("%d helpers were still running after QEMU exited", n)
	}
}
