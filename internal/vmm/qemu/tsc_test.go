package qemu

import (
	"testing"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

func TestParseKernelLogTSC(t *testing.T) {
	for _, tc := range []struct {
		name, log string
		want      uint64
	}{
		{"refined wins", "[    0.000024] tsc: Detected 2445.406 MHz processor\n[    1.2] tsc: Refined TSC clocksource calibration: 2445.399 MHz\n", 2445399},
		{"detected only", "[    0.000024] tsc: Detected 2445.406 MHz processor\n", 2445406},
		{"kmsg record format", "6,123,24,-;tsc: Detected 3000.000 MHz processor\n", 3000000},
		{"one decimal", "tsc: Refined TSC clocksource calibration: 2100.5 MHz", 2100500},
		{"nothing", "clocksource: Switched to clocksource tsc\n", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := parseKernelLogTSC(tc.log); got != tc.want {
				t.Errorf("got %d kHz, want %d", got, tc.want)
			}
		})
	}
}

func TestParseCPUInfo(t *testing.T) {
	info := "processor\t: 0\nmodel name\t: AMD EPYC\ncpu MHz\t\t: 2445.406\ncache size\t: 512 KB\n"
	if got := parseCPUInfoKHz(info); got != 2445406 {
		t.Errorf("got %d, want 2445406", got)
	}
	if got := parseCPUInfoKHz("processor: 0\n"); got != 0 {
		t.Errorf("got %d from no cpu MHz line", got)
	}
}

func TestHostTSC(t *testing.T) {
	tsc, err := HostTSC()
	prereq.Check(t, err, "run on an x86 host that reports its TSC frequency")
	if tsc.KHz < 100000 || tsc.KHz > 10000000 {
		t.Errorf("host TSC %d kHz from %s is implausible", tsc.KHz, tsc.Source)
	}
	t.Logf("host TSC %d kHz from %s", tsc.KHz, tsc.Source)
}
