// Package boottest boots a kernel and initrd under QEMU's microvm machine,
// watches the serial console, and times the boot: the harness of
// internal/kernel's boot tests and of bench/boot. It is not ferry's VMM driver
// (internal/vmm/qemu is); it runs one short-lived guest with its console on a
// pipe and reports what the guest printed and when.
//
// A guest reports to the harness with console lines that start with Marker;
// `<Marker> uptime=<seconds>` lines are parsed as guest uptimes.
package boottest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Marker starts every console line a test init prints for the harness.
const Marker = "FERRY-BOOT"

// Config is one boot.
type Config struct {
	QEMU     string   // default qemu-system-x86_64
	Kernel   string   // vmlinux (PVH) or bzImage/vmlinuz
	Initrd   string   // one file: the shared + per-machine archives
	Append   string   // extra kernel command line
	MemoryMB int      // default 256
	CPUs     int      // default 1
	Accel    string   // default "tcg"; "kvm" needs /dev/kvm
	TSCkHz   uint64   // tsc_early_khz for TCG; default: HostTSCkHz
	Extra    []string // extra QEMU arguments (devices)
	// Icount, when set, is QEMU's -icount value (e.g. "shift=0"): the
	// guest's clock then counts instructions (1 ns each with shift=0)
	// instead of host time, so guest times are the same on a busy and an
	// idle host and approximate a 1-instruction-per-ns CPU. TCG only;
	// the guest's TSC runs at 1 GHz.
	Icount string
	// Machine is QEMU's -M value; default "microvm,x-option-roms=off,rtc=on".
	// With rtc=off a guest kernel with x86 CMOS support (every x86 kernel
	// without kvmclock, i.e. under TCG) spends about 1 s probing for the RTC
	// at boot, and 1 s more with RTC_DRV_CMOS.
	Machine string
}

// Args returns QEMU's argument vector for cfg (without the binary).
func (cfg Config) Args() ([]string, error) {
	cfg = cfg.withDefaults()
	cmdline := "console=ttyS0 reboot=t panic=-1"
	if cfg.Accel == "tcg" {
		khz := cfg.TSCkHz
		if cfg.Icount != "" {
			khz = 1000000 // icount's TSC ticks once per virtual nanosecond
		}
		if khz == 0 {
			var err error
			if khz, err = HostTSCkHz(); err != nil {
				return nil, err
			}
		}
		cmdline += " tsc_early_khz=" + strconv.FormatUint(khz, 10)
	}
	if cfg.Append != "" {
		cmdline += " " + cfg.Append
	}
	a := []string{
		"-M", cfg.Machine,
		"-accel", cfg.Accel,
		"-cpu", "max",
		"-smp", strconv.Itoa(cfg.CPUs),
		"-m", strconv.Itoa(cfg.MemoryMB) + "M",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "stdio",
		"-kernel", cfg.Kernel,
	}
	if cfg.Initrd != "" {
		a = append(a, "-initrd", cfg.Initrd)
	}
	a = append(a, "-append", cmdline)
	if cfg.Icount != "" {
		a = append(a, "-icount", cfg.Icount)
	}
	return append(a, cfg.Extra...), nil
}

func (cfg Config) withDefaults() Config {
	if cfg.QEMU == "" {
		cfg.QEMU = "qemu-system-x86_64"
	}
	if cfg.MemoryMB == 0 {
		cfg.MemoryMB = 256
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = 1
	}
	if cfg.Accel == "" {
		cfg.Accel = "tcg"
	}
	if cfg.Machine == "" {
		cfg.Machine = "microvm,x-option-roms=off,rtc=on"
	}
	return cfg
}

// Result is what one boot showed.
type Result struct {
	Console string        // everything the guest wrote to the serial console
	Wall    time.Duration // QEMU start to QEMU exit
	// FirstMarker is QEMU start to the first Marker line on the console:
	// the wall time to first init output.
	FirstMarker time.Duration
	// InitExec is the guest's printk time of "Run /init as init process"
	// (kernel start to init exec, in guest time); 0 when not printed.
	InitExec time.Duration
	// Uptimes are the guest uptimes init printed as "<Marker> uptime=<s>",
	// in order.
	Uptimes []time.Duration
	// Markers are the Marker lines, without the Marker and its space.
	Markers []string
	// Lines are all console lines with the wall time each arrived.
	Lines []Line
}

// Line is one console line and when it arrived, from QEMU start.
type Line struct {
	At   time.Duration
	Text string
}

// First returns the arrival time of the first console line matching re.
func (r Result) First(re *regexp.Regexp) (time.Duration, bool) {
	for _, l := range r.Lines {
		if re.MatchString(l.Text) {
			return l.At, true
		}
	}
	return 0, false
}

// Run boots cfg and waits for QEMU to exit (the guest powers off or
// reboots). It fails when QEMU exits non-zero or ctx ends first; Result
// holds what was seen either way.
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg = cfg.withDefaults()
	args, err := cfg.Args()
	if err != nil {
		return Result{}, err
	}
	cmd := exec.CommandContext(ctx, cfg.QEMU, args...)
	cmd.WaitDelay = 2 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return Result{}, err
	}
	var res Result
	var mu sync.Mutex
	var console strings.Builder
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Result{}, fmt.Errorf("start %s: %w", cfg.QEMU, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		br := bufio.NewReader(out)
		for {
			line, err := br.ReadString('\n')
			if line != "" {
				now := time.Since(start)
				mu.Lock()
				console.WriteString(line)
				res.observe(strings.TrimRight(line, "\r\n"), now)
				mu.Unlock()
			}
			if err != nil { // EOF: QEMU closed the console
				return
			}
		}
	}()
	<-done
	werr := cmd.Wait()
	res.Wall = time.Since(start)
	res.Console = console.String()
	if werr != nil {
		return res, fmt.Errorf("qemu: %w (stderr: %s)", werr, strings.TrimSpace(stderr.String()))
	}
	return res, nil
}

var (
	printkRE = regexp.MustCompile(`^\[\s*([0-9]+)\.([0-9]{6})\] Run (\S+) as init process`)
	uptimeRE = regexp.MustCompile(`uptime=([0-9]+(?:\.[0-9]+)?)`)
)

func (r *Result) observe(line string, at time.Duration) {
	r.Lines = append(r.Lines, Line{At: at, Text: line})
	if m := printkRE.FindStringSubmatch(line); m != nil && r.InitExec == 0 {
		s, _ := strconv.ParseInt(m[1], 10, 64)
		us, _ := strconv.ParseInt(m[2], 10, 64)
		r.InitExec = time.Duration(s)*time.Second + time.Duration(us)*time.Microsecond
	}
	i := strings.Index(line, Marker+" ")
	if i < 0 {
		return
	}
	if r.FirstMarker == 0 {
		r.FirstMarker = at
	}
	text := line[i+len(Marker)+1:]
	r.Markers = append(r.Markers, text)
	if m := uptimeRE.FindStringSubmatch(text); m != nil {
		f, _ := strconv.ParseFloat(m[1], 64)
		r.Uptimes = append(r.Uptimes, time.Duration(f*float64(time.Second)))
	}
}

// HostTSCkHz returns the host's TSC frequency in kHz for tsc_early_khz=:
// $FERRY_TSC_KHZ, else the kernel's calibration in its log, else
// /proc/cpuinfo's "cpu MHz".
func HostTSCkHz() (uint64, error) {
	if v := os.Getenv("FERRY_TSC_KHZ"); v != "" {
		return strconv.ParseUint(v, 10, 64)
	}
	if out, err := exec.Command("dmesg").Output(); err == nil {
		for _, re := range []*regexp.Regexp{
			regexp.MustCompile(`tsc: Refined TSC clocksource calibration: ([0-9]+)\.([0-9]+) MHz`),
			regexp.MustCompile(`tsc: Detected ([0-9]+)\.([0-9]+) MHz processor`),
		} {
			if m := re.FindAllStringSubmatch(string(out), -1); m != nil {
				last := m[len(m)-1]
				return mhzToKHz(last[1], last[2]), nil
			}
		}
	}
	b, err := os.ReadFile("/proc/cpuinfo")
	if err == nil {
		if m := regexp.MustCompile(`(?m)^cpu MHz\s*:\s*([0-9]+)\.?([0-9]*)`).FindStringSubmatch(string(b)); m != nil {
			return mhzToKHz(m[1], m[2]), nil
		}
	}
	return 0, errors.New("host TSC frequency: not in dmesg or /proc/cpuinfo; set FERRY_TSC_KHZ")
}

func mhzToKHz(whole, frac string) uint64 {
	w, _ := strconv.ParseUint(whole, 10, 64)
	f, _ := strconv.ParseUint((frac + "000")[:3], 10, 64)
	return w*1000 + f
}
