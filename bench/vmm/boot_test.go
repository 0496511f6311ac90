// Package vmm_test times guest boots through ferry's QEMU driver and
// compares microvm variants, to pick the fastest bootable configuration.
//
//	FERRY_BENCH=1 go test -run BootVariants -v ./bench/vmm/
package vmm_test

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/kernel"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
	"github.com/ferryvm/ferry/internal/testutil/prereq/vmprereq"
	"github.com/ferryvm/ferry/internal/vmm"
	"github.com/ferryvm/ferry/internal/vmm/qemu"
)

// rebootInit prints the guest uptime at init and reboots at once.
const rebootInit = `#!/bin/busybox sh
read up idle </proc/uptime 2>/dev/null || { /bin/busybox mount -t proc proc /proc; read up idle </proc/uptime; }
echo "BENCH uptime=$up"
/bin/busybox reboot -f
`

func TestBootVariants(t *testing.T) {
	prereq.OptIn(t, "FERRY_BENCH", "the boot variants benchmark")
	k := vmprereq.BuiltKernel(t, kernel.Vmlinux)
	bb := vmprereq.Busybox(t)
	rounds := 5
	if n, err := strconv.Atoi(os.Getenv("FERRY_BENCH_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	ctx := context.Background()
	dir := t.TempDir()
	initPath := filepath.Join(dir, "init.sh")
	os.WriteFile(initPath, []byte(rebootInit), 0o755)
	initrd, err := kernel.BuildShared(ctx, dir, kernel.Shared{Init: initPath, Files: []kernel.Entry{
		{Header: kernel.Header{Name: "bin", Mode: fs.ModeDir | 0o755}},
		{Header: kernel.Header{Name: "bin/busybox", Mode: 0o755}, Source: bb},
	}})
	if err != nil {
		t.Fatal(err)
	}
	spec := vmm.Spec{ID: "bench", Dir: dir, Kernel: k, Initrd: initrd, VCPUs: 1, MemoryMiB: 128,
		Control: vmm.Control{Socket: filepath.Join(dir, "control.sock")}, ConsoleLog: filepath.Join(dir, "console.log")}
	d := qemu.New()
	if _, err := d.Probe(ctx, k); err != nil {
		t.Logf("accelerator: TCG (%v)", err)
	}
	plan, err := d.Plan(spec)
	if err != nil {
		t.Fatal(err)
	}
	machine := slices.Index(plan.Args, "-M") + 1
	base := plan.Args[machine] // microvm,x-option-roms=off,rtc=off,acpi=off
	variants := []struct{ name, m, cpu string }{
		{"driver default (acpi=off)", base, ""},
		{"-cpu qemu64", base, "qemu64"},
		{"+pit=off,pic=off", base + ",pit=off,pic=off", ""},
		{"ACPI on", strings.TrimSuffix(base, ",acpi=off"), ""},
	}
	for _, v := range variants {
		args := slices.Clone(plan.Args)
		args[machine] = v.m
		if v.cpu != "" {
			args[slices.Index(args, "-cpu")+1] = v.cpu
		}
		var walls []time.Duration
		var ups []string
		for range rounds {
			os.Remove(spec.ConsoleLog)
			os.Remove(spec.Control.Socket)
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			cmd := exec.CommandContext(ctx, plan.Path, args[1:]...)
			start := time.Now()
			out, err := cmd.CombinedOutput()
			wall := time.Since(start)
			cancel()
			console, _ := os.ReadFile(spec.ConsoleLog)
			if err != nil || !strings.Contains(string(console), "BENCH uptime=") {
				// ACPI on with the minimal kernel: the guest runs and reboots but
				// its console writes never reach the serial port.
				t.Logf("%s: does not boot: %v %s\n%s", v.name, err, out, lastLines(string(console), 5))
				walls = nil
				break
			}
			walls = append(walls, wall)
			ups = append(ups, between(string(console), "BENCH uptime=", "\n"))
		}
		if walls == nil {
			continue
		}
		slices.Sort(walls)
		slices.Sort(ups)
		t.Logf("%-26s accel=%s  wall start→exit median %v (min %v, max %v)  init at uptime median %ss  [%d rounds]",
			v.name, plan.Accel, walls[len(walls)/2].Round(time.Millisecond), walls[0].Round(time.Millisecond),
			walls[len(walls)-1].Round(time.Millisecond), ups[len(ups)/2], len(walls))
	}
}

func between(s, a, b string) string {
	_, after, ok := strings.Cut(s, a)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(after, b)
	return strings.TrimSpace(v)
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
