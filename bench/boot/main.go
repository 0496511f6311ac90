// Command boot times guest boots under QEMU microvm (TCG unless -accel kvm):
// QEMU wall time to first init output and guest time from kernel start to
// init exec, for ferry's built kernel (vmlinux and bzImage) and Debian's
// modular kernel with a modules initramfs. See bench/README.md.
//
//	go run ./bench/boot                       # all installed kernels, busybox /init, 5 runs each
//	go run ./bench/boot -kernels vmlinux -init bin/ferry-init -file /ferry/run.json=run.json \
//	    -first 'ferry-init' -n 10             # ferry-init instead of the busybox probe
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ferryvm/ferry/internal/kernel"
	"github.com/ferryvm/ferry/internal/kernel/boottest"
)

type fileFlags map[string][]byte

func (f fileFlags) String() string { return "" }
func (f fileFlags) Set(v string) error {
	guest, host, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("want guestpath=hostpath")
	}
	b, err := os.ReadFile(host)
	if err != nil {
		return err
	}
	f[guest] = b
	return nil
}

func main() {
	files := fileFlags{}
	kernels := flag.String("kernels", "vmlinux,bzImage,fallback", "kernels to boot: vmlinux, bzImage, fallback, or paths")
	n := flag.Int("n", 5, "boots per kernel")
	initPath := flag.String("init", "", "binary to run as /init (default: a busybox probe that prints its uptime and powers off)")
	first := flag.String("first", boottest.Marker, "regexp of the console line counted as first init output")
	appendArgs := flag.String("append", "", "extra kernel command line (e.g. quiet)")
	mem := flag.Int("m", 256, "guest memory in MiB")
	accel := flag.String("accel", "tcg", "tcg or kvm")
	verbose := flag.Bool("v", false, "print each boot's console")
	machine := flag.String("M", "", "QEMU -M value (default: boottest's microvm,x-option-roms=off,rtc=on)")
	flag.Var(files, "file", "per-machine file guestpath=hostpath (repeatable)")
	flag.Parse()
	if len(files) == 0 {
		files["/ferry/run.json"] = []byte(`{"bench":true}`)
	}
	re, err := regexp.Compile(*first)
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "ferry-bench-boot")
	if err != nil {
		fail(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()

	fmt.Printf("%-10s %4s %10s %12s %12s %12s  (medians of %d boots; accel %s)\n",
		"kernel", "ok", "wall", "first-out", "init-exec", "init-uptime", *n, *accel)
	for _, k := range strings.Split(*kernels, ",") {
		kpath, modDir, mods, err := resolve(k)
		if err != nil {
			fmt.Printf("%-10s skipped: %v\n", k, err)
			continue
		}
		var shared kernel.Shared
		if *initPath != "" {
			shared = kernel.Shared{Init: *initPath, ModulesDir: modDir, Modules: mods}
		} else if shared, err = boottest.BusyboxShared(dir, nil, modDir, mods); err != nil {
			fail(err)
		}
		sharedPath, err := kernel.BuildShared(ctx, dir, shared)
		if err != nil {
			fail(err)
		}
		initrd := filepath.Join(dir, "initrd-"+filepath.Base(k))
		if err := kernel.WriteInitrd(ctx, initrd, sharedPath, files); err != nil {
			fail(err)
		}
		var wall, out, exec, up []time.Duration
		ok := 0
		for i := 0; i < *n; i++ {
			c, cancel := context.WithTimeout(ctx, 2*time.Minute)
			res, err := boottest.Run(c, boottest.Config{Kernel: kpath, Initrd: initrd, Append: *appendArgs, MemoryMB: *mem, Accel: *accel, Machine: *machine})
			cancel()
			if *verbose {
				fmt.Print(res.Console)
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s boot %d: %v\n", k, i, err)
				continue
			}
			ok++
			wall = append(wall, res.Wall)
			if at, found := res.First(re); found {
				out = append(out, at)
			}
			exec = append(exec, res.InitExec)
			if len(res.Uptimes) > 0 {
				up = append(up, res.Uptimes[len(res.Uptimes)-1])
			}
		}
		fmt.Printf("%-10s %2d/%d %10s %12s %12s %12s\n", k, ok, *n, med(wall), med(out), med(exec), med(up))
	}
}

// resolve turns a kernel name into a path (and modules for the fallback).
func resolve(k string) (path, modDir string, mods []string, err error) {
	switch k {
	case kernel.Vmlinux, kernel.BzImage:
		path, err = kernel.Find(k)
		return path, "", nil, err
	case "fallback":
		fb, err := kernel.FindFallback()
		if err != nil {
			return "", "", nil, err
		}
		mods, err := kernel.ModuleClosure(fb.ModulesDir, kernel.FallbackModules)
		return fb.Kernel, fb.ModulesDir, mods, err
	}
	_, err = os.Stat(k)
	return k, "", nil, err
}

func med(d []time.Duration) string {
	if len(d) == 0 {
		return "-"
	}
	d = slices.Clone(d)
	slices.Sort(d)
	return d[len(d)/2].Round(time.Millisecond).String()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench/boot:", err)
	os.Exit(1)
}
