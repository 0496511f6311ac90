package boottest

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestArgs(t *testing.T) {
	a, err := Config{Kernel: "/k/vmlinux", Initrd: "/m/initrd.cpio", Append: "quiet", TSCkHz: 2445406}.Args()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(a, " ")
	for _, want := range []string{
		"-M microvm,x-option-roms=off,rtc=on", "-accel tcg", "-m 256M", "-no-reboot",
		"-kernel /k/vmlinux", "-initrd /m/initrd.cpio",
		"-append console=ttyS0 reboot=t panic=-1 tsc_early_khz=2445406 quiet",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("args %q lack %q", got, want)
		}
	}
	a, _ = Config{Kernel: "k", Accel: "kvm"}.Args()
	if i := slices.Index(a, "-append"); i < 0 || strings.Contains(a[i+1], "tsc_early_khz") {
		t.Errorf("kvm args %q: want no tsc_early_khz", a)
	}
}

func TestObserve(t *testing.T) {
	var r Result
	for i, l := range []string{
		"[    0.000000] Linux version 6.1.192",
		"[    0.853412] Run /init as init process",
		"FERRY-BOOT init uptime=0.91",
		"FERRY-BOOT file /ferry/run.json={}",
	} {
		r.observe(l, time.Duration(i)*time.Second)
	}
	if r.InitExec != 853412*time.Microsecond {
		t.Errorf("InitExec = %v", r.InitExec)
	}
	if r.FirstMarker != 2*time.Second || !slices.Equal(r.Uptimes, []time.Duration{910 * time.Millisecond}) {
		t.Errorf("FirstMarker %v, Uptimes %v", r.FirstMarker, r.Uptimes)
	}
	if !slices.Equal(r.Markers, []string{"init uptime=0.91", "file /ferry/run.json={}"}) || len(r.Lines) != 4 {
		t.Errorf("Markers %q, %d lines", r.Markers, len(r.Lines))
	}
}
