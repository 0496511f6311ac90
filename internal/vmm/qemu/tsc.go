package qemu

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// TSC is the host's TSC frequency and where it was found.
type TSC struct {
	KHz    uint64 `json:"khz"`
	Source string `json:"source"`
}

var (
	tscOnce sync.Once
	tsc     TSC
	tscErr  error
)

// HostTSC finds the host's TSC frequency, once per process. Under TCG the
// guest reads the host's TSC, and a guest kernel without tsc_early_khz= hangs
// or drifts calibrating it against emulated timers. Sources, most exact
// first: sysfs tsc_freq_khz (some kernels), the kernel's own calibration in
// the log ("tsc: Refined TSC clocksource calibration: … MHz", then
// "tsc: Detected … MHz processor"), CPUID leaves 0x15/0x16, and /proc/cpuinfo
// "cpu MHz" as a last resort.
func HostTSC() (TSC, error) {
	tscOnce.Do(func() { tsc, tscErr = detectTSC() })
	return tsc, tscErr
}

func detectTSC() (TSC, error) {
	if b, err := os.ReadFile("/sys/devices/system/cpu/cpu0/tsc_freq_khz"); err == nil {
		if k, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && k > 0 {
			return TSC{k, "sysfs tsc_freq_khz"}, nil
		}
	}
	if log := kernelLog(); log != "" {
		if k, what := parseKernelLogTSC(log); k > 0 {
			return TSC{k, "kernel log: " + what}, nil
		}
	}
	if k := cpuidTSCkHz(); k > 0 {
		return TSC{k, "cpuid"}, nil
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if k := parseCPUInfoKHz(string(b)); k > 0 {
			return TSC{k, "/proc/cpuinfo cpu MHz"}, nil
		}
	}
	return TSC{}, fmt.Errorf("host TSC frequency: no source (sysfs, kernel log, cpuid, /proc/cpuinfo): %w", errdefs.ErrUnavailable)
}

// kernelLog reads the kernel ring buffer from /dev/kmsg (non-blocking, each
// read one record), falling back to dmesg.
func kernelLog() string {
	// Raw syscalls: an *os.File would park a non-blocking read at the end of
	// the buffer in the poller forever instead of returning EAGAIN.
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err == nil {
		defer func() { _ = unix.Close(fd) }()
		var sb strings.Builder
		buf := make([]byte, 8192)
		for {
			n, err := unix.Read(fd, buf)
			if err == unix.EPIPE || err == unix.EINTR { // record overwritten while reading: go on
				continue
			}
			if err != nil || n <= 0 {
				break
			}
			sb.Write(buf[:n])
			sb.WriteByte('\n')
		}
		if sb.Len() > 0 {
			return sb.String()
		}
	}
	out, err := exec.Command("dmesg").Output()
	if err != nil {
		return ""
	}
	return string(out)
}

var (
	refinedRE  = regexp.MustCompile(`tsc: Refined TSC clocksource calibration: ([0-9]+)\.([0-9]{1,3}) MHz`)
	detectedRE = regexp.MustCompile(`tsc: Detected ([0-9]+)\.([0-9]{1,3}) MHz processor`)
	cpuMHzRE   = regexp.MustCompile(`(?m)^cpu MHz\s*:\s*([0-9]+)(?:\.([0-9]+))?`)
)

// parseKernelLogTSC returns the last refined calibration in log, else the
// last "Detected" line, in kHz.
func parseKernelLogTSC(log string) (uint64, string) {
	for _, re := range []*regexp.Regexp{refinedRE, detectedRE} {
		if m := re.FindAllStringSubmatch(log, -1); m != nil {
			last := m[len(m)-1]
			return mhzToKHz(last[1], last[2]), strings.TrimSpace(last[0])
		}
	}
	return 0, ""
}

func parseCPUInfoKHz(cpuinfo string) uint64 {
	m := cpuMHzRE.FindStringSubmatch(cpuinfo)
	if m == nil {
		return 0
	}
	return mhzToKHz(m[1], m[2])
}

// mhzToKHz turns "2445" "406" into 2445406.
func mhzToKHz(whole, frac string) uint64 {
	w, _ := strconv.ParseUint(whole, 10, 64)
	frac = (frac + "000")[:3]
	f, _ := strconv.ParseUint(frac, 10, 64)
	return w*1000 + f
}
