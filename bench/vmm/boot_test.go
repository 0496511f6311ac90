// Package vmm_test times guest boots through ferry's QEMU driver and
// compares microvm variants, to pick the fastest bootable configuration.
//
//	FERRY_BENCH=1 go test -run BootVariants -v ./bench/vmm/
package vmm_test

import (
	"context"
	"io/fs"
	"os"
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
	base := plan.Args[machine] // microvm,x-option-roms=off,rtc=on,acpi=off
	// unconfined is the plan without ferry's sandbox: no -sandbox filter,
	// QEMU as root in the caller's cgroup.
	unconfined := func(p *vmm.Plan) {
		i := slices.Index(p.Args, "-sandbox")
		p.Args = slices.Delete(p.Args, i, i+2)
		p.Sandbox = nil
	}
	// noWriter hands QEMU the console file itself (no console writer).
	noWriter := func(p *vmm.Plan) {
		for i, x := range p.Extra {
			if x.Console {
				f, err := os.OpenFile(spec.ConsoleLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { f.Close() })
				p.Extra[i] = vmm.ExtraFile{FD: x.FD, Name: x.Name, File: f}
			}
		}
		p.Console = nil
	}
	variants := []struct {
		name string
		edit func(*vmm.Plan)
	}{
		{"driver default (sandboxed)", func(*vmm.Plan) {}},
		{"unconfined, console writer", unconfined},
		{"unconfined, no console writer", func(p *vmm.Plan) { unconfined(p); noWriter(p) }},
		{"TCG cache unbounded (no tb-size)", func(p *vmm.Plan) {
			if i := slices.Index(p.Args, "-accel") + 1; strings.HasPrefix(p.Args[i], "tcg,") {
				p.Args[i] = "tcg"
			}
		}},
		{"-cpu qemu64", func(p *vmm.Plan) { p.Args[slices.Index(p.Args, "-cpu")+1] = "qemu64" }},
		{"+pit=off,pic=off", func(p *vmm.Plan) { p.Args[machine] = base + ",pit=off,pic=off" }},
		{"ACPI on", func(p *vmm.Plan) { p.Args[machine] = strings.TrimSuffix(base, ",acpi=off") }},
	}
	if only := os.Getenv("FERRY_BENCH_VARIANTS"); only != "" {
		n, _ := strconv.Atoi(only)
		variants = variants[:n]
	}
	// Rounds interleave the variants, so load changes hit all alike.
	walls := make([][]time.Duration, len(variants))
	ups := make([][]string, len(variants))
	broken := make([]bool, len(variants))
	for range rounds {
		for i, v := range variants {
			if broken[i] {
				continue
			}
			os.Remove(spec.ConsoleLog)
			p, err := d.Plan(spec)
			if err != nil {
				t.Fatal(err)
			}
			v.edit(p)
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			start := time.Now()
			proc, err := vmm.Run(ctx, p)
			var st vmm.ExitStatus
			if err == nil {
				st, err = proc.Wait(ctx)
				if err != nil {
					proc.Kill()
					<-proc.Done()
				}
			}
			wall := time.Since(start)
			cancel()
			console := waitConsole(spec.ConsoleLog, "BENCH uptime=")
			if err != nil || st.Code != 0 || !strings.Contains(console, "BENCH uptime=") {
				// ACPI on with the minimal kernel: the guest runs and reboots but
				// its console writes never reach the serial port.
				t.Logf("%s: does not boot: %v %v\n%s", v.name, err, st, lastLines(console, 5))
				broken[i] = true
				continue
			}
			walls[i] = append(walls[i], wall)
			ups[i] = append(ups[i], between(console, "BENCH uptime=", "\n"))
		}
	}
	for i, v := range variants {
		w, u := walls[i], ups[i]
		if broken[i] || len(w) == 0 {
			continue
		}
		slices.Sort(w)
		slices.Sort(u)
		t.Logf("%-30s accel=%s  wall start→exit median %v (min %v, max %v)  init at uptime median %ss  [%d rounds]",
			v.name, plan.Accel, w[len(w)/2].Round(time.Millisecond), w[0].Round(time.Millisecond),
			w[len(w)-1].Round(time.Millisecond), u[len(u)/2], len(w))
	}
}

// waitConsole waits a moment for the console writer, which drains the
// pipe after QEMU exits, to have written want.
func waitConsole(path, want string) string {
	deadline := time.Now().Add(2 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) || time.Now().After(deadline) {
			return string(b)
		}
		time.Sleep(5 * time.Millisecond)
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
