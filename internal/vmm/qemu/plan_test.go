package qemu

import (
	"flag"
	"os"
	"path/filepath"
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
			{ID: "eth1", Tap: "ft-named", MAC: "02:fe:00:00:00:03"},
		},
		Control:    vmm.Control{Socket: "/var/lib/ferry/machines/m1/control.sock"},
		ConsoleLog: "/var/lib/ferry/machines/m1/console.log",
	}
}

func TestPlanGolden(t *testing.T) {
	for _, accel := range []string{AccelTCG, AccelKVM} {
		t.Run(accel, func(t *testing.T) {
			d := New(WithBinary("qemu-system-x86_64"), WithAccel(accel), WithTSCKHz(2445406))
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
			if len(p.Extra) != 1 || p.Extra[0].FD != 3 {
				t.Errorf("extra files %+v, want the TAP as fd 3", p.Extra)
			}
			if p.Marker != "ferry-m1" || p.PIDFile != "/var/lib/ferry/machines/m1/vmm.pid" {
				t.Errorf("marker %q pid file %q", p.Marker, p.PIDFile)
			}
		})
	}
}

func TestCmdline(t *testing.T) {
	d := New(WithAccel(AccelTCG), WithTSCKHz(1000))
	for _, tc := range []struct{ in, want string }{
		{"", "console=ttyS0 reboot=t panic=-1 tsc_early_khz=1000"},
		{"console=hvc0 panic=5", "reboot=t tsc_early_khz=1000 console=hvc0 panic=5"},
		{"quiet -- console=x", "console=ttyS0 reboot=t panic=-1 tsc_early_khz=1000 quiet -- console=x"},
		{"tsc_early_khz=7", "console=ttyS0 reboot=t panic=-1 tsc_early_khz=7"},
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
	d := New()
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
