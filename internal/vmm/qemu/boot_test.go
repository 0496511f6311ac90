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

	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/kernel"
	"github.com/ferryvm/ferry/internal/network"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
	"github.com/ferryvm/ferry/internal/testutil/prereq/vmprereq"
	"github.com/ferryvm/ferry/internal/vmm"
	"github.com/ferryvm/ferry/internal/vmm/qemu"
)

// smokeInit is the guest's /init: it reports its block devices and NIC,
// says hello on the ferry.control virtio-serial port, waits for the host's
// answer, and reboots (QEMU runs with -no-reboot, so it exits).
const smokeInit = `#!/bin/busybox sh
export PATH=/bin
busybox mount -t proc proc /proc
busybox mount -t sysfs sysfs /sys
busybox mount -t devtmpfs dev /dev
if [ -f /lib/modules/ferry.order ]; then
  while read m; do busybox insmod "$m" || echo "SMOKE insmod $m failed"; done </lib/modules/ferry.order
fi
read up idle </proc/uptime
echo "SMOKE uptime=$up"
echo "SMOKE blocks=$(busybox ls /sys/block | busybox grep vd | busybox xargs)"
[ -e /sys/class/net/eth0/address ] && echo "SMOKE mac=$(busybox cat /sys/class/net/eth0/address)"
for p in /sys/class/virtio-ports/*; do
  [ "$(busybox cat $p/name)" = ferry.control ] && port=/dev/$(busybox basename $p)
done
echo "SMOKE port=$port"
# Keep the port open across both directions: the guest driver discards
# what the host sent while the port was closed.
exec 3<>$port
echo "hello from the guest" >&3
read answer <&3
echo "SMOKE answer=$answer"
# The host's first connection closes before the second opens: reads see
# EOF in between, so wait for the reconnected host's line.
again=
while [ -z "$again" ]; do read again <&3 || busybox usleep 100000; done
echo "SMOKE again=$again"
busybox reboot -f
`

// guestKernel is the kernel a boot test uses: the built vmlinux, else
// Debian's fallback kernel with its virtio modules in the initramfs.
type guestKernel struct {
	path       string
	acpi       bool // the fallback kernel finds its virtio devices through ACPI
	modulesDir string
	modules    []string
}

func requireQEMUBoot(t *testing.T) (guestKernel, string) {
	t.Helper()
	prereq.Short(t, "boots a VM")
	prereq.Tool(t, qemu.DefaultBinary)
	bb := vmprereq.Busybox(t)
	k := vmprereq.GuestKernel(t)
	if !k.Fallback {
		return guestKernel{path: k.Path}, bb
	}
	t.Logf("no built vmlinux: booting the fallback kernel %s", k.Path)
	return guestKernel{path: k.Path, acpi: true, modulesDir: k.ModulesDir, modules: k.Modules}, bb
}

// TestBootSmoke boots a busybox initramfs through the driver and checks the
// drives, the NIC (a real TAP passed as fd 3, in a fresh netns when root),
// the control channel in both directions, the console log, and that a guest
// reboot ends QEMU with status 0 and removes the pid file.
func TestBootSmoke(t *testing.T) {
	gk, bb := requireQEMUBoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	initPath := filepath.Join(dir, "init.sh")
	os.WriteFile(initPath, []byte(smokeInit), 0o755)
	initrd, err := kernel.BuildShared(ctx, dir, kernel.Shared{Init: initPath, ModulesDir: gk.modulesDir, Modules: gk.modules, Files: []kernel.Entry{
		{Header: kernel.Header{Name: "bin", Mode: fs.ModeDir | 0o755}},
		{Header: kernel.Header{Name: "bin/busybox", Mode: 0o755}, Source: bb},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"base.img", "scratch.img"} {
		if err := os.WriteFile(filepath.Join(dir, d), make([]byte, 1<<20), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	spec := vmm.Spec{
		ID: "smoke", Dir: dir, Kernel: gk.path, Initrd: initrd, ACPI: gk.acpi,
		VCPUs: 1, MemoryMiB: 128,
		Drives: []vmm.Drive{
			{ID: "base", Path: filepath.Join(dir, "base.img"), ReadOnly: true},
			{ID: "scratch", Path: filepath.Join(dir, "scratch.img")},
		},
		Control:    vmm.Control{Socket: filepath.Join(dir, "control.sock")},
		ConsoleLog: filepath.Join(dir, "console.log"),
	}
	if nic, ok := testNIC(t); ok {
		spec.NICs = []vmm.NIC{nic}
	}
	d := qemu.New()
	if accel, why := d.Probe(ctx, gk.path); why != nil {
		t.Logf("accelerator %s: %v", accel, why)
	}
	plan, err := d.Plan(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("accel %s: %s", plan.Accel, plan.Command())
	start := time.Now()
	proc, err := d.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proc.Kill(); <-proc.Done() })
	adopted, err := vmm.Adopt(spec.PIDFile())
	if err != nil || adopted.Pid != proc.Pid {
		t.Fatalf("re-adopting the running QEMU: %v", err)
	}

	conn, err := d.DialControl(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || line != "hello from the guest\n" {
		t.Fatalf("control channel read %q, %v\nconsole:\n%s", line, err, readFile(spec.ConsoleLog))
	}
	io.WriteString(conn, "ack\n")
	// A restarted daemon reconnects: QEMU's chardev accepts a new client.
	time.Sleep(200 * time.Millisecond)
	conn.Close()
	conn2, err := d.DialControl(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	io.WriteString(conn2, "reconnected\n")

	st, err := proc.Wait(ctx)
	if err != nil {
		t.Fatalf("guest did not end: %v\nconsole:\n%s\nvmm log:\n%s", err, readFile(spec.ConsoleLog), readFile(spec.VMMLogPath()))
	}
	wall := time.Since(start)
	select {
	case <-adopted.Done():
	case <-time.After(5 * time.Second):
		t.Error("the adopted handle did not see QEMU exit")
	}
	console := readFile(spec.ConsoleLog)
	if !st.Known || st.Code != 0 {
		t.Errorf("QEMU ended with %v, want exit status 0 after the guest rebooted\nvmm log:\n%s", st, readFile(spec.VMMLogPath()))
	}
	for _, want := range []string{"SMOKE blocks=vda vdb", "SMOKE answer=ack", "SMOKE again=reconnected", "SMOKE port=/dev/vport"} {
		if !strings.Contains(console, want) {
			t.Errorf("console lacks %q:\n%s", want, console)
		}
	}
	if len(spec.NICs) == 1 && !strings.Contains(console, "SMOKE mac="+spec.NICs[0].MAC) {
		t.Errorf("guest NIC does not have MAC %s:\n%s", spec.NICs[0].MAC, console)
	}
	if _, err := os.Stat(spec.PIDFile()); !os.IsNotExist(err) {
		t.Errorf("pid file left after exit: %v", err)
	}
	up := ""
	for _, l := range strings.Split(console, "\n") {
		if strings.HasPrefix(l, "SMOKE uptime=") {
			up = strings.TrimPrefix(l, "SMOKE uptime=")
		}
	}
	t.Logf("accel %s: init at %ss guest uptime, %v wall from start to QEMU exit", plan.Accel, up, wall.Round(time.Millisecond))
}

// testNIC returns a NIC on a real TAP inside a fresh network namespace
// (root only); without root the boot runs without a NIC.
func testNIC(t *testing.T) (vmm.NIC, bool) {
	if os.Geteuid() != 0 {
		t.Log("not root: booting without a NIC")
		return vmm.NIC{}, false
	}
	name := prereq.NetNS(t)
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	nw, err := network.Open(context.Background(), db, network.Config{NetNS: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nw.Close)
	att, err := nw.Attach(context.Background(), network.AttachRequest{MachineID: "smoke"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(att.Close)
	e := att.Primary()
	return vmm.NIC{ID: "eth0", Tap: e.Tap, File: e.File, MAC: e.MAC}, true
}

func readFile(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}
