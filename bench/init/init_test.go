// Package init benchmarks ferry-init's own share of boot under QEMU microvm:
// from init's start to the entrypoint's exec, as init measures it ("ready in
// X ms") and as the kernel log shows it (printk time of "Run /init" to the
// printk time of the ready line, which adds the Go runtime's start).
//
//	go test ./bench/init -run XXX -bench . -benchtime 5x
package initbench

import (
	"os"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/initd/inittest"
)

var (
	readyRE = regexp.MustCompile(`\[\s*([0-9.]+)\] ferry-init: ready in ([0-9.]+)ms \(modules ([0-9.]+)ms\)`)
	runRE   = regexp.MustCompile(`\[\s*([0-9.]+)\] Run /init as init process`)
	entryRE = regexp.MustCompile(`ENTRY uptime=([0-9.]+)`)
)

func BenchmarkInitBoot(b *testing.B) {
	e := inittest.Setup(b)
	base := e.Rootfs(b, map[string]string{"/entry.sh": "#!/bin/sh\nread up idle </proc/uptime\necho ENTRY uptime=$up\n"})
	var initMS, kernelInitMS, modulesMS, toEntry, firstOut, wall []float64
	for i := 0; i < b.N; i++ {
		scratch := inittest.Scratch(b, 64)
		cfg := &guest.RunConfig{
			Version:  guest.ConfigVersion,
			Image:    guest.Image{Cmd: []string{"/entry.sh"}, Env: []string{"PATH=/bin"}},
			Hostname: "bench",
			DNS:      &guest.DNS{Nameservers: []string{"10.0.0.1"}},
			Root:     guest.Root{Mode: guest.RootOverlay, Device: "/dev/vda", Scratch: "/dev/vdb"},
			Power:    guest.Power{ExitGraceMS: 1},
			Debug:    os.Getenv("FERRY_BENCH_DEBUG") != "",
		}
		start := time.Now()
		boot := e.Start(b, cfg, inittest.Disks{Base: base, Scratch: scratch}, inittest.Options{Append: os.Getenv("FERRY_BENCH_APPEND"), Icount: os.Getenv("FERRY_BENCH_ICOUNT")})
		res, err := boot.Wait()
		if err != nil {
			b.Fatalf("boot: %v\n%s", err, res.Console)
		}
		wall = append(wall, time.Since(start).Seconds())
		m := readyRE.FindStringSubmatch(res.Console)
		r := runRE.FindStringSubmatch(res.Console)
		en := entryRE.FindStringSubmatch(res.Console)
		if m == nil || r == nil || en == nil {
			b.Fatalf("no ready/run/entry line:\n%s", res.Console)
		}
		readyAt, _ := strconv.ParseFloat(m[1], 64)
		runAt, _ := strconv.ParseFloat(r[1], 64)
		im, _ := strconv.ParseFloat(m[2], 64)
		mm, _ := strconv.ParseFloat(m[3], 64)
		up, _ := strconv.ParseFloat(en[1], 64)
		initMS, modulesMS = append(initMS, im), append(modulesMS, mm)
		kernelInitMS = append(kernelInitMS, (readyAt-runAt)*1000)
		toEntry = append(toEntry, up)
		out, _ := res.First(entryRE)
		firstOut = append(firstOut, out.Seconds())
		b.Logf("boot %d: init %.2f ms, run-init-to-ready %.2f ms, entry uptime %.2f s, first output %.2f s, wall %.2f s",
			i, im, kernelInitMS[i], up, firstOut[i], wall[i])
	}
	b.ReportMetric(median(initMS), "init-ms")
	b.ReportMetric(median(modulesMS), "modules-ms")
	b.ReportMetric(median(kernelInitMS), "run-init-to-ready-ms")
	b.ReportMetric(median(toEntry), "entry-uptime-s")
	b.ReportMetric(median(firstOut), "first-out-s")
	b.ReportMetric(median(wall), "wall-s")
}

// median of xs (the boots' spread comes from the host: report the middle).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
