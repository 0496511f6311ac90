package qemu_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/kernel"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
	"github.com/ferryvm/ferry/internal/vmm"
	"github.com/ferryvm/ferry/internal/vmm/qemu"
)

// floodInit says hello on the control port, floods the console with
// FLOOD bytes that hold no newline, and reboots when the host answers.
const floodInit = `#!/bin/busybox sh
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
echo "SANDBOX start"
busybox head -c FLOOD /dev/zero | busybox tr '\0' x
echo
echo "SANDBOX flooded"
echo "ready" >&3
read answer <&3
busybox reboot -f
`

// TestSandboxedQEMU boots a guest under the sandboxed driver (root's
// default) and checks the running QEMU from the outside: its uid is one of
// the VMM block's and owns nothing, it has no groups and no capabilities,
// QEMU's seccomp filter is on (Seccomp: 2, NoNewPrivs: 1), it is in its own
// cgroup with the machine's limits, its descriptors are the files of its own
// machine and nothing else, and its uid can open no file of the host's
// data dir: not a root-owned 0600 file, not another machine's directory,
// not even its own machine's files by path. The guest also floods the
// console with 512 KiB without a newline: the console writer keeps each file
// under the 128 KiB cap.
func TestSandboxedQEMU(t *testing.T) {
	gk, bb := requireQEMUBoot(t)
	prereq.Root(t, "runs QEMU as a uid of its own in a cgroup")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// A data dir laid out as the daemon does: machine dirs 0700 root.
	root := t.TempDir()
	secret := filepath.Join(root, "secret")
	os.WriteFile(secret, []byte("root only"), 0o600)
	machines := filepath.Join(root, "machines")
	dir, other := filepath.Join(machines, "sbx"), filepath.Join(machines, "other")
	for _, d := range []string{dir, other} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(other, "initrd.cpio"), []byte("someone else's run config"), 0o644)

	initPath := filepath.Join(root, "init.sh")
	os.WriteFile(initPath, []byte(strings.Replace(floodInit, "FLOOD", strconv.Itoa(512<<10), 1)), 0o755)
	initrd, err := kernel.BuildShared(ctx, dir, kernel.Shared{Init: initPath, ModulesDir: gk.modulesDir, Modules: gk.modules, Files: []kernel.Entry{
		{Header: kernel.Header{Name: "bin", Mode: fs.ModeDir | 0o755}},
		{Header: kernel.Header{Name: "bin/busybox", Mode: 0o755}, Source: bb},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"base.img", "scratch.img"} {
		os.WriteFile(filepath.Join(dir, d), make([]byte, 1<<20), 0o600)
	}
	spec := vmm.Spec{
		ID: "sbx", Dir: dir, Kernel: gk.path, Initrd: initrd, ACPI: gk.acpi,
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
	uids := vmm.UIDRange{Base: vmm.DefaultUIDBase + 60000, Count: 16, LockDir: filepath.Join(root, "uids")}
	parent := fmt.Sprintf("ferry-guestsec-test-%d", os.Getpid())
	t.Cleanup(func() { removeCgroupParent(parent) })
	const capBytes = 128 << 10
	d := qemu.New(qemu.WithSandbox(uids, parent), qemu.WithConsoleLog(capBytes, 1))
	plan, err := d.Plan(spec)
	if err != nil {
		t.Fatal(err)
	}
	proc, err := d.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proc.Kill(); <-proc.Done() })

	conn, err := d.DialControl(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("control channel: %q, %v\nvmm log:\n%s", line, err, readFile(spec.VMMLogPath()))
	}

	// The running QEMU, seen from /proc.
	status := procStatus(t, proc.Pid)
	uid := proc.UID
	if uid < uids.Base || uid >= uids.Base+uids.Count {
		t.Fatalf("QEMU's uid %d is not from the VMM block %d+%d", uid, uids.Base, uids.Count)
	}
	for key, want := range map[string]string{
		"Uid":        fmt.Sprintf("%d\t%d\t%d\t%d", uid, uid, uid, uid),
		"Gid":        fmt.Sprintf("%d\t%d\t%d\t%d", uid, uid, uid, uid),
		"Groups":     "",
		"Seccomp":    "2",
		"NoNewPrivs": "1",
		"CapEff":     "0000000000000000",
		"CapPrm":     "0000000000000000",
	} {
		if status[key] != want {
			t.Errorf("/proc/%d/status %s: %q, want %q", proc.Pid, key, status[key], want)
		}
	}
	checkCgroup(t, proc.Pid, plan.Sandbox.Cgroup)

	// Its descriptors: its own machine's files, the TAP, the uid lock,
	// pipes, sockets and QEMU's anonymous files; no other path.
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", proc.Pid))
	for _, e := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", proc.Pid, e.Name()))
		if err != nil || !strings.HasPrefix(target, "/") || target == "/dev/null" || strings.HasPrefix(target, "/dev/net/tun") || strings.HasPrefix(target, "/dev/urandom") {
			continue
		}
		if !strings.HasPrefix(target, dir+"/") && !strings.HasPrefix(target, uids.LockDir+"/") && target != gk.path && !strings.HasPrefix(target, "/memfd:") {
			t.Errorf("QEMU holds fd %s → %s, outside its machine", e.Name(), target)
		}
	}

	// What its uid can open by path: nothing of the data dir.
	for _, path := range []string{secret, other, filepath.Join(other, "initrd.cpio"), filepath.Join(dir, "scratch.img"), initrd} {
		out, err := asUID(uid, "cat", path)
		if err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("uid %d reads %s: %v %s", uid, path, err, out)
		}
	}
	if out, err := asUID(uid, "ls", machines); err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("uid %d lists the machines dir: %v %s", uid, err, out)
	}

	peak := "memory/memory.max_usage_in_bytes"
	if vmm.CgroupV2() {
		peak = "memory.peak"
	}
	ctl, name := filepath.Split(peak)
	if b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", ctl, plan.Sandbox.Cgroup.Path, name)); err == nil {
		n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		t.Logf("QEMU's cgroup: peak memory %d MiB of %d MiB allowed (guest %d MiB), %s tasks",
			n>>20, plan.Sandbox.Cgroup.MemoryMax>>20, spec.MemoryMiB, strings.TrimSpace(readFile(filepath.Join("/sys/fs/cgroup", "pids", plan.Sandbox.Cgroup.Path, "pids.current"))))
	}
	io.WriteString(conn, "bye\n")
	st, err := proc.Wait(ctx)
	if err != nil || !st.Known || st.Code != 0 {
		t.Fatalf("QEMU ended with %v, %v\nvmm log:\n%s", st, err, readFile(spec.VMMLogPath()))
	}
	for _, cgdir := range proc.Cgroups {
		if _, err := os.Stat(cgdir); !os.IsNotExist(err) {
			t.Errorf("cgroup %s left after QEMU exited: %v", cgdir, err)
		}
	}

	// The console writer: each file under the cap, the guest's last line
	// kept.
	waitWriter(t, spec.ConsoleLog, "SANDBOX flooded")
	for _, p := range []string{spec.ConsoleLog, spec.ConsoleLog + ".1"} {
		fi, err := os.Stat(p)
		if err != nil || fi.Size() > capBytes {
			t.Errorf("%s: %v, %d bytes (cap %d)", p, err, sizeOf(fi), capBytes)
		}
	}
}

func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// checkCgroup: the process is in the cgroup's path, whose limit files hold
// the plan's values.
func checkCgroup(t *testing.T, pid int, cg *vmm.Cgroup) {
	t.Helper()
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if !strings.Contains(string(b), "/"+cg.Path+"\n") {
		t.Errorf("QEMU is not in its cgroup %s:\n%s", cg.Path, b)
	}
	limits := map[string]string{
		"memory/memory.limit_in_bytes": strconv.FormatInt(cg.MemoryMax, 10),
		"pids/pids.max":                strconv.Itoa(cg.PidsMax),
		"cpu/cpu.cfs_quota_us":         strconv.Itoa(cg.CPUs * 100000),
	}
	if vmm.CgroupV2() {
		limits = map[string]string{
			"memory.max": strconv.FormatInt(cg.MemoryMax, 10),
			"pids.max":   strconv.Itoa(cg.PidsMax),
			"cpu.max":    fmt.Sprintf("%d 100000", cg.CPUs*100000),
		}
	}
	for file, want := range limits {
		ctl, name := filepath.Split(file)
		got, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", ctl, cg.Path, name))
		if err != nil || strings.TrimSpace(string(got)) != want {
			t.Errorf("cgroup %s: %q, %v; want %s", file, got, err, want)
		}
	}
}

func removeCgroupParent(parent string) {
	for _, base := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpu"} {
		syscall.Rmdir(filepath.Join(base, parent))
	}
}

func asUID(uid int, argv ...string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// waitWriter waits until the console writer, which drains the pipe after
// QEMU exits, has written want.
func waitWriter(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(readFile(path), want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("console log lacks %q:\n%.2000s", want, readFile(path))
}

func sizeOf(fi os.FileInfo) int64 {
	if fi == nil {
		return -1
	}
	return fi.Size()
}
