package vmm_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
	"github.com/ferryvm/ferry/internal/vmm"
	"github.com/ferryvm/ferry/internal/vmm/qemu"
)

// BenchmarkDriverStart times what ferry adds around the VMM's exec: plan the
// argv, open the logs, fork/exec in a new session, read the start time and
// write the pid file. /bin/true stands in for QEMU so the guest's boot is
// not measured.
//
//	go test -run XXX -bench DriverStart ./bench/vmm/
func BenchmarkDriverStart(b *testing.B) {
	bin := prereq.Tool(b, "true")
	dir := b.TempDir()
	k := filepath.Join(dir, "vmlinux")
	os.WriteFile(k, nil, 0o644)
	d := qemu.New(qemu.WithBinary(bin), qemu.WithAccel(qemu.AccelTCG), qemu.WithTSCKHz(1))
	spec := vmm.Spec{ID: "bench", Dir: dir, Kernel: k, VCPUs: 1, MemoryMiB: 128,
		Drives:     []vmm.Drive{{ID: "base", Path: k, ReadOnly: true}, {ID: "scratch", Path: k}},
		Control:    vmm.Control{Socket: filepath.Join(dir, "control.sock")},
		ConsoleLog: filepath.Join(dir, "console.log")}
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		p, err := d.Start(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		p.Wait(ctx)
		b.StartTimer()
	}
}
