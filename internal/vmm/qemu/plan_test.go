package qemu

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/vmm"
)

var update = flag.Bool("update", false, "rewrite golden files")

func testSpec(t *testing.T) vmm.Spec {
	tap, err := os.Open(os.DevNull) // stands in for an open TAP
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tap.Close() })
	return vmm.Spec{
		ID:        "m1",
		Dir:       "/var/lib/ferry/machines/m1",
		Kernel:    "/usr/local/lib/ferry/vmlinux",
		Initrd:    "/var/lib/ferry/machines/m1/initrd.cpio",
		Cmdline:   "quiet -- extra",
		VCPUs:     2,
		MemoryMiB: 256,
		Drives: []vmm.Drive{
			{ID: "base", Path: "/var/lib/ferry/rootfs/bases/abc.ext4", ReadOnly: true},
			{ID: "scratch", Path: "/var/lib/ferry/machines/m1/scratch,1.ext4"},
		},
		NICs: []vmm.NIC{
			{ID: "eth0", Tap: "ft-0123456789ab", File: tap, MAC: "02:fe:00:00:00:02"},
		},
		Control:    vmm.Control{Socket: "/var/lib/ferry/machines/m1/control.sock"},
		ConsoleLog: "/var/lib/ferry/machines/m1/console.log",
	}
}

// sandboxed is a driver confined as root's default is, whoever runs the
// test.
func sandboxed(opts ...Option) *Driver {
	return New(append([]Option{WithBinary("qemu-system-x86_64"), WithTSCKHz(2445406),
		WithSandbox(vmm.UIDRange{Base: 100000, Count: 10, LockDir: "/run/test"}, "ferry")}, opts...)...)
}

func TestPlanGolden(t *testing.T) {
	for _, accel := range []string{AccelTCG, AccelKVM} {
		t.Run(accel, func(t *testing.T) {
			d := sandboxed(WithAccel(accel))
			p, err := d.Plan(testSpec(t))
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(p.Args, "\n") + "\n"
			golden := filepath.Join("testdata", "microvm-"+accel+".args")
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("argv differs from %s (go test -update to rewrite):\n%s", golden, got)
			}
			if p.Emulated != (accel == AccelTCG) {
				t.Errorf("Emulated = %v under %s", p.Emulated, accel)
			}
			if p.Marker != "ferry-m1" || p.PIDFile != "/var/lib/ferry/machines/m1/vmm.pid" {
				t.Errorf("marker %q pid file %q", p.Marker, p.PIDFile)
			}
		})
	}
}

// TestPlanPassesEveryFile: QEMU gets every file of the machine as a
// descriptor, so a uid that owns nothing can run it; only the initrd is
// handed to that uid (QEMU reads it by /proc/self/fd), and the cgroup is
// sized to the machine.
func TestPlanPassesEveryFile(t *testing.T) {
	spec := testSpec(t)
	p, err := sandboxed(WithAccel(AccelTCG)).Plan(spec)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, x := range p.Extra {
		if x.FD != 3+i {
			t.Errorf("extra %d has fd %d", i, x.FD)
		}
		got = append(got, fmt.Sprintf("%s path=%s write=%v listen=%v console=%v file=%v", x.Name, x.Path, x.Write, x.Listen, x.Console, x.File != nil))
	}
	want := []string{
		"kernel path=/usr/local/lib/ferry/vmlinux write=false listen=false console=false file=false",
		"initrd path=/var/lib/ferry/machines/m1/initrd.cpio write=false listen=false console=false file=false",
		"console path= write=false listen=false console=true file=false",
		"drive:base path=/var/lib/ferry/rootfs/bases/abc.ext4 write=false listen=false console=false file=false",
		"drive:scratch path=/var/lib/ferry/machines/m1/scratch,1.ext4 write=false listen=false console=false file=false",
		"drive:scratch path=/var/lib/ferry/machines/m1/scratch,1.ext4 write=true listen=false console=false file=false",
		"tap:ft-0123456789ab path= write=false listen=false console=false file=true",
		"control path=/var/lib/ferry/machines/m1/control.sock write=false listen=true console=false file=false",
	}
	if !slices.Equal(got, want) {
		t.Errorf("extra files:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, a := range p.Args {
		if strings.Contains(a, "path=/var/") || strings.Contains(a, "file=/var/") || strings.HasPrefix(a, "/var/") {
			t.Errorf("QEMU opens %q by path", a)
		}
	}
	if !slices.Contains(p.Args, "-sandbox") || p.Args[slices.Index(p.Args, "-sandbox")+1] != Sandbox {
		t.Errorf("no -sandbox %s in %s", Sandbox, p.Command())
	}
	if p.Console == nil || p.Console.Path != spec.ConsoleLog {
		t.Errorf("console %+v", p.Console)
	}
	sb := p.Sandbox
	if sb == nil || sb.UIDs.Base != 100000 || !slices.Equal(sb.Chown, []string{spec.Initrd}) || sb.Cgroup == nil {
		t.Fatalf("sandbox %+v", sb)
	}
	cg := *sb.Cgroup
	if cg.Path != "ferry/ferry-m1" || cg.MemoryMax != int64(256+memOverheadMiB+tcgOverheadMiB)<<20 || cg.CPUs != 3 || cg.PidsMax != pidsBase+4 {
		t.Errorf("cgroup %+v", cg)
	}
}

// TestPlanTapByName: a TAP QEMU opens by name needs CAP_NET_ADMIN, so only
// an unconfined QEMU takes one.
func TestPlanTapByName(t *testing.T) {
	spec := testSpec(t)
	spec.NICs = append(spec.NICs, vmm.NIC{ID: "eth1", Tap: "ft-named", MAC: "02:fe:00:00:00:03"})
	if _, err := sandboxed().Plan(spec); err == nil || !strings.Contains(err.Error(), "pass it open") {
		t.Errorf("sandboxed plan with a TAP by name: %v", err)
	}
	p, err := New(WithoutSandbox(), WithAccel(AccelTCG), WithTSCKHz(1)).Plan(spec)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.Command(), "tap,id=eth1,ifname=ft-named,script=no,downscript=no") || p.Sandbox != nil {
		t.Errorf("unconfined plan: %s (sandbox %+v)", p.Command(), p.Sandbox)
	}
}

func TestCmdline(t *testing.T) {
	d := New(WithAccel(AccelTCG), WithTSCKHz(1000))
	for _, tc := range []struct{ in, want string }{
		{"", "console=ttyS0 reboot=t panic=-1 tsc_early_khz=1000 tsc=reliable"},
		{"console=hvc0 panic=5", "reboot=t tsc_early_khz=1000 tsc=reliable console=hvc0 panic=5"},
		{"quiet -- console=x", "console=ttyS0 reboot=t panic=-1 tsc_early_khz=1000 tsc=reliable quiet -- console=x"},
		{"tsc_early_khz=7", "console=ttyS0 reboot=t panic=-1 tsc=reliable tsc_early_khz=7"},
		{"tsc=unstable", "console=ttyS0 reboot=t panic=-1 tsc_early_khz=1000 tsc=unstable"},
	} {
		s := testSpec(t)
		s.Cmdline = tc.in
		got, err := d.cmdline(s, AccelTCG)
		if err != nil || got != tc.want {
			t.Errorf("cmdline(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestAccelAutoFallsBackToTCG(t *testing.T) {
	d := New(WithSandbox(vmm.UIDRange{Base: 100000, Count: 10, LockDir: "/run/test"}, ""))
	d.kvm = func() error { return os.ErrPermission }
	d.tsc = func() (TSC, error) { return TSC{KHz: 3000000, Source: "test"}, nil }
	a, why := d.Accel()
	if a != AccelTCG || why == nil || !d.Emulated() {
		t.Fatalf("accel %s (%v), want tcg with a reason", a, why)
	}
	p, err := d.Plan(testSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.Command(), "tsc_early_khz=3000000") {
		t.Errorf("TCG plan lacks tsc_early_khz: %s", p.Command())
	}
}

// A spare's plan names its drives' nodes (Claim reopens them) and puts
// each NIC on a hub of its own, waiting for a TAP, with a sink port that
// takes what the guest sends until then, even in the sandbox (which
// refuses a TAP by name).
func TestPlanSpare(t *testing.T) {
	spec := testSpec(t)
	spec.Spare = true
	spec.NICs = []vmm.NIC{{ID: "eth0", MAC: "02:fe:00:00:00:02"}, {ID: "eth1", MAC: "02:fe:00:00:00:03"}}
	p, err := sandboxed().Plan(spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"readonly=on,node-name=base-fmt,file.node-name=base-file0",
		"discard=unmap,node-name=scratch-fmt,file.node-name=scratch-file0",
		"-netdev hubport,id=eth0,hubid=0 -device virtio-net-device,netdev=eth0",
		"-netdev hubport,id=eth1,hubid=1 -device virtio-net-device,netdev=eth1",
		"-netdev hubport,id=eth0-sink,hubid=0 ", "-netdev hubport,id=eth1-sink,hubid=1 ",
	} {
		if !strings.Contains(p.Command(), want) {
			t.Errorf("spare plan lacks %q:\n%s", want, p.Command())
		}
	}
	spec.Spare = false // a NIC with neither a TAP name nor an open TAP
	if _, err := sandboxed().Plan(spec); err == nil {
		t.Error("a NIC with no TAP planned outside a spare")
	}
}
