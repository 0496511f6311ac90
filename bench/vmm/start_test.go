package vmm_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
	"github.com/ferryvm/ferry/internal/vmm"
	"github.com/ferryvm/ferry/internal/vmm/qemu"
)

// BenchmarkDriverStart times what ferry adds around the VMM's exec: plan the
// argv, open the logs and the machine's files, start the console writer,
// fork/exec in a new session, read the start time and write the pid file —
// and, sandboxed (root's default), lock a uid, chown the initrd and make the
// cgroup. /bin/true stands in for QEMU so the guest's boot is not measured.
//
//	go test -run XXX -bench DriverStart ./bench/vmm/
func BenchmarkDriverStart(b *testing.B) {
	bin := prereq.Tool(b, "true")
	for _, v := range []struct {
		name string
		opts []qemu.Option
	}{
		{"sandboxed", []qemu.Option{qemu.WithSandbox(vmm.UIDRange{Base: vmm.DefaultUIDBase + 61000, Count: 64, LockDir: filepath.Join(b.TempDir(), "uids")}, "ferry-bench")}},
		{"unconfined", []qemu.Option{qemu.WithoutSandbox()}},
	} {
		b.Run(v.name, func(b *testing.B) {
			if v.name == "sandboxed" {
				prereq.Root(b, "the sandbox sets a uid and makes a cgroup")
				b.Cleanup(func() {
					for _, h := range []string{"", "memory", "pids", "cpu"} {
						_ = syscall.Rmdir(filepath.Join("/sys/fs/cgroup", h, "ferry-bench"))
					}
				})
			}
			dir := b.TempDir()
			k := filepath.Join(dir, "vmlinux")
			os.WriteFile(k, nil, 0o644)
			initrd := filepath.Join(dir, "initrd")
			os.WriteFile(initrd, nil, 0o600)
			d := qemu.New(append([]qemu.Option{qemu.WithBinary(bin), qemu.WithAccel(qemu.AccelTCG), qemu.WithTSCKHz(1)}, v.opts...)...)
			spec := vmm.Spec{ID: "bench", Dir: dir, Kernel: k, Initrd: initrd, VCPUs: 1, MemoryMiB: 128,
				Drives:     []vmm.Drive{{ID: "base", Path: k, ReadOnly: true}, {ID: "scratch", Path: initrd}},
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
		})
	}
}
