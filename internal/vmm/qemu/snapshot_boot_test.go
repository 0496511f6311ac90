package qemu_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/kernel"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
	"github.com/ferryvm/ferry/internal/vmm"
	"github.com/ferryvm/ferry/internal/vmm/qemu"
	"github.com/ferryvm/ferry/internal/vmm/template"
)

// warmInit is a template guest's /init: it says "ready" on the control
// port, then answers every "probe" line with what a restored machine must
// see as its own: its scratch disk's first bytes (after dropping the
// block cache, as ferry-init does) and size, and 16 random bytes.
const warmInit = `#!/bin/busybox sh
export PATH=/bin
busybox mount -t proc proc /proc
busybox mount -t sysfs sysfs /sys
busybox mount -t devtmpfs dev /dev
if [ -f /lib/modules/ferry.order ]; then
  while read m; do busybox insmod "$m"; done </lib/modules/ferry.order
fi
for p in /sys/class/virtio-ports/*; do
  [ "$(busybox cat $p/name)" = ferry.control ] && port=/dev/$(busybox basename $p)
done
exec 3<>$port
echo ready >&3
while true; do
  read cmd <&3 || { busybox usleep 20000; continue; }
  [ "$cmd" = probe ] || continue
  busybox blockdev --flushbufs /dev/vdb
  disk=$(busybox head -c 16 /dev/vdb)
  rnd=$(busybox head -c 16 /dev/urandom | busybox od -An -tx1 | busybox tr -d ' \n')
  echo "disk=$disk size=$(busybox cat /sys/block/vdb/size) rnd=$rnd" >&3
done
`

// TestWarmRestore saves a sandboxed template machine into the template
// store and restores it twice, each time under the sandbox with its own
// drive files, control socket and console: the restored guest answers on
// its own socket, reads its own scratch disk, and sees that disk's real
// size (block_resize on resume), not the template's. The template's RAM is
// a memfd apart from its state (x-ignore-shared): the state holds no RAM,
// and both restored QEMUs map the template's sealed memory privately, so
// the pages neither guest wrote are shared between them (RssShmem, Pss).
func TestWarmRestore(t *testing.T) {
	gk, bb := requireQEMUBoot(t)
	prereq.Root(t, "runs QEMU as a uid of its own in a cgroup")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	root := t.TempDir()
	initPath := filepath.Join(root, "init.sh")
	if err := os.WriteFile(initPath, []byte(warmInit), 0o755); err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(root, "shared")
	if err := os.MkdirAll(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	initrd, err := kernel.BuildShared(ctx, shared, kernel.Shared{Init: initPath, ModulesDir: gk.modulesDir, Modules: gk.modules, Files: []kernel.Entry{
		{Header: kernel.Header{Name: "bin", Mode: fs.ModeDir | 0o755}},
		{Header: kernel.Header{Name: "bin/busybox", Mode: 0o755}, Source: bb},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(initrd, 0o644); err != nil {
		t.Fatal(err)
	}
	// machine makes a machine directory (0700, as the daemon does) with
	// a base and a scratch drive; the scratch starts with tag.
	machine := func(id, tag string, scratchSize int64) vmm.Spec {
		dir := filepath.Join(root, "machines", id)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		base, scratch := filepath.Join(dir, "base.img"), filepath.Join(dir, "scratch.img")
		if err := os.WriteFile(base, make([]byte, 1<<20), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(scratch, []byte(tag), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(scratch, scratchSize); err != nil {
			t.Fatal(err)
		}
		return vmm.Spec{
			ID: id, Dir: dir, Kernel: gk.path, Initrd: initrd, ACPI: gk.acpi,
			VCPUs: 1, MemoryMiB: 128,
			Drives: []vmm.Drive{
				{ID: "base", Path: base, ReadOnly: true},
				{ID: "scratch", Path: scratch},
			},
			Control:    vmm.Control{Socket: filepath.Join(dir, "control.sock")},
			ConsoleLog: filepath.Join(dir, "console.log"),
		}
	}
	uids := vmm.UIDRange{Base: vmm.DefaultUIDBase + 61000, Count: 16, LockDir: filepath.Join(root, "uids")}
	parent := fmt.Sprintf("ferry-warm-test-%d", os.Getpid())
	t.Cleanup(func() { removeCgroupParent(parent) })
	d := qemu.New(qemu.WithSandbox(uids, parent))

	// The template: booted, waiting, saved into the store.
	tspec := machine("template", "TEMPLATE-DISK---", 1<<20)
	mem, err := template.NewMemory("test", int64(tspec.MemoryMiB)<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	tproc, err := d.StartTemplate(ctx, tspec, mem)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tproc.Kill(); <-tproc.Done() })
	tconn, err := d.DialControl(ctx, tspec)
	if err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(tconn).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("template guest said %q, %v\nconsole:\n%s", line, err, readFile(tspec.ConsoleLog))
	}
	store, err := template.Open(filepath.Join(root, "vm-templates"))
	if err != nil {
		t.Fatal(err)
	}
	key := template.Key{VMM: "qemu", VMMVersion: "test", Kernel: "k", Init: "i", VCPUs: 1, MemoryMiB: 128,
		Layout: template.Layout{Drives: []template.DriveShape{{ReadOnly: true}, {}}, Control: "serial", QMP: true}}
	saved := time.Now()
	tmpl, err := store.Put(ctx, key, func(ctx context.Context, f *os.File) error {
		if err := qemu.Save(ctx, tspec.Dir, f); err != nil {
			return err
		}
		// The template VMM must be gone before its memory is saved.
		tconn.Close()
		tproc.Kill()
		<-tproc.Done()
		return nil
	}, mem)
	if err != nil {
		t.Fatalf("save: %v\nvmm log:\n%s", err, readFile(tspec.VMMLogPath()))
	}
	t.Logf("template saved in %v: state %d bytes, memory %d bytes in use of %d", time.Since(saved).Round(time.Millisecond), tmpl.Size, tmpl.Memory.Data, tmpl.Memory.Size)
	// The guest's RAM (it ran a kernel and a shell: megabytes) is not in
	// the state: device state only.
	if tmpl.Size > 1<<20 {
		t.Errorf("the state is %d bytes: it holds guest RAM (x-ignore-shared not in effect)", tmpl.Size)
	}
	if tmpl.Memory == nil || tmpl.Memory.Data < 4<<20 {
		t.Errorf("memory manifest %+v: the guest's RAM is not in the memory file", tmpl.Memory)
	}

	got, err := store.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	rnds := map[string]string{}
	var pids []int
	for i, size := range []int64{2 << 20, 4 << 20} {
		id := fmt.Sprintf("restored%d", i)
		tag := fmt.Sprintf("RESTORED-DISK-%02d", i)
		spec := machine(id, tag, size)
		start := time.Now()
		proc, err := d.StartRestore(ctx, spec, got.State, got.RAM)
		if err != nil {
			t.Fatalf("restore %s: %v\nvmm log:\n%s", id, err, readFile(spec.VMMLogPath()))
		}
		pids = append(pids, proc.Pid)
		t.Cleanup(func() { proc.Kill(); <-proc.Done() })
		if err := qemu.Resume(ctx, spec.Dir, spec.Drives); err != nil {
			t.Fatalf("resume %s: %v\nvmm log:\n%s", id, err, readFile(spec.VMMLogPath()))
		}
		resumed := time.Since(start)
		conn, err := d.DialControl(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		dialed := time.Since(start)
		if _, err := io.WriteString(conn, "probe\n"); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		if err != nil {
			t.Fatalf("%s: control channel: %v\nconsole:\n%s\nvmm log:\n%s", id, err, readFile(spec.ConsoleLog), readFile(spec.VMMLogPath()))
		}
		t.Logf("%s: resumed %v after launch, control connected %v, answered %v: %s", id, resumed.Round(time.Millisecond), dialed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), strings.TrimSpace(line))
		want := fmt.Sprintf("disk=%s size=%d ", tag, size/512)
		if !strings.HasPrefix(line, want) {
			t.Errorf("%s answered %q, want it to start %q (its own disk, at its own size)", id, line, want)
		}
		if _, rnd, ok := strings.Cut(strings.TrimSpace(line), "rnd="); ok {
			rnds[id] = rnd
		}
	}
	// Both guests ran (a shell, the kernel): the template pages they did
	// not write are the sealed memfd's, mapped by both.
	for i, pid := range pids {
		shmem, pss, rss := procKB(t, pid, "status", "RssShmem:"), procKB(t, pid, "smaps_rollup", "Pss:"), procKB(t, pid, "smaps_rollup", "Rss:")
		t.Logf("restored%d (pid %d): Rss %d KiB, Pss %d KiB, RssShmem %d KiB", i, pid, rss, pss, shmem)
		if shmem < 4<<10 {
			t.Errorf("restored%d maps %d KiB of the template's memory: its RAM is not the template's shared pages", i, shmem)
		}
		if pss > rss-shmem/4 {
			t.Errorf("restored%d: Pss %d KiB of Rss %d KiB: the template pages are not shared", i, pss, rss)
		}
	}
	if rnds["restored0"] == rnds["restored1"] {
		// Not an error here: the VMM restores the kernel's random state
		// as saved; ferry-init reseeds it from host bytes (initd).
		t.Logf("both restored guests read the same random bytes (%s): the pool must be reseeded", rnds["restored0"])
	}
}

// procKB reads the kB value of field from /proc/pid/file.
func procKB(t *testing.T, pid int, file, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field {
			var n int
			fmt.Sscan(f[1], &n)
			return n
		}
	}
	t.Fatalf("/proc/%d/%s has no %s", pid, file, field)
	return 0
}
