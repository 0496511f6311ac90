package qemu

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/vmm"
)

// TestStartReturnsThePlanItRan: on a host whose /dev/kvm opens but cannot
// run the guest, the first Start's probe moves the driver to TCG; the plan
// the process carries (what the daemon records) is the TCG one it ran,
// not the KVM one a Plan before the probe would have given.
func TestStartReturnsThePlanItRan(t *testing.T) {
	dir := t.TempDir()
	// A stand-in QEMU: the KVM probe fails, anything else runs on.
	fake := filepath.Join(dir, "qemu")
	script := "#!/bin/sh\ncase \"$*\" in *'-accel kvm -cpu host -smp 1 -m 64M'*) echo 'kvm: MSR error' >&2; exit 1;; esac\nexec sleep 30\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	kernel := filepath.Join(dir, "vmlinux")
	if err := os.WriteFile(kernel, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := New(WithBinary(fake), WithTSCKHz(2000000), WithoutSandbox())
	d.kvm = func() error { return nil } // /dev/kvm "usable"
	spec := vmm.Spec{ID: "m1", Dir: dir, Kernel: kernel, VCPUs: 1, MemoryMiB: 64,
		Control: vmm.MachineControl(dir), ConsoleLog: filepath.Join(dir, "console.log")}
	if before, err := d.Plan(spec); err != nil || before.Accel != AccelKVM {
		t.Fatalf("plan before any start: %+v, %v; want kvm (the probe has not run)", before, err)
	}
	p, err := d.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Kill(); <-p.Done() })
	if p.Plan == nil || p.Plan.Accel != AccelTCG || !p.Plan.Emulated || !p.Emulated || p.Driver != "qemu" {
		t.Fatalf("started plan %+v (emulated %v, driver %q); want the tcg plan", p.Plan, p.Emulated, p.Driver)
	}
	i := slices.Index(p.Plan.Args, "-accel")
	if i < 0 || !strings.HasPrefix(p.Plan.Args[i+1], AccelTCG) || p.Plan.Args[i+3] != "max" {
		t.Errorf("argv %v: want -accel tcg -cpu max", p.Plan.Args)
	}
}
