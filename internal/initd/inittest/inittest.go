// Package inittest boots ferry-init for real: it builds ferry-init, a small
// busybox root file system (ext4, made with mkfs.ext4 -d) and a formatted
// sparse scratch disk, writes the run config into the per-machine initramfs,
// and runs QEMU microvm (TCG when there is no KVM) with the disks and the
// control channel on a virtio-serial port. Tests of initd, the VMM drivers
// and the machine runtime can reuse it.
//
// Prerequisites (each missing one skips the test with its name, through
// package prereq): the guest kernel (make kernel, or scripts/kernel.sh
// fallback), qemu-system-x86_64, mkfs.ext4, a static busybox
// (busybox-static) and the go tool, which builds ferry-init from the tree
// under test once per test binary (vmprereq.Init).
package inittest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/initd"
	"github.com/ferryvm/ferry/internal/kernel"
	"github.com/ferryvm/ferry/internal/kernel/boottest"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
	"github.com/ferryvm/ferry/internal/testutil/prereq/vmprereq"
)

// Steps links initd into every test binary that uses this package, so Go's
// test cache is invalidated when init's code (built into the guest by
// BuildInit, which the cache cannot see) changes.
var Steps = initd.Steps

// Env is what every boot shares: a kernel and the shared initramfs with a
// freshly built ferry-init.
type Env struct {
	Kernel  string
	Shared  string // shared initramfs
	Busybox string
	// Fallback is set when booting Debian's modular kernel.
	Fallback bool
	dir      string
}

var (
	envOnce sync.Once
	envVal  *Env
	envErr  error
)

// Setup returns the shared Env, building it on first use; it skips t when
// a prerequisite is missing (package prereq says which and how to get it).
func Setup(t testing.TB) *Env {
	t.Helper()
	prereq.Short(t, "boots VMs")
	prereq.Tools(t, "qemu-system-x86_64", "mkfs.ext4")
	bb := vmprereq.Busybox(t)
	k := vmprereq.GuestKernel(t)
	init := vmprereq.Init(t)
	envOnce.Do(func() { envVal, envErr = setup(bb, k, init) })
	if envErr != nil {
		t.Fatal(envErr)
	}
	return envVal
}

// setup builds the shared initramfs of init (built from the tree under
// test) for kernel k.
func setup(bb string, k vmprereq.Kernel, init string) (*Env, error) {
	dir, err := os.MkdirTemp("", "ferry-inittest-")
	if err != nil {
		return nil, err
	}
	e := &Env{Busybox: bb, Kernel: k.Path, Fallback: k.Fallback, dir: dir}
	shared := kernel.Shared{Init: init, ModulesDir: k.ModulesDir, Modules: k.Modules}
	if e.Shared, err = kernel.BuildShared(context.Background(), dir, shared); err != nil {
		return nil, err
	}
	return e, nil
}

// BuildInit builds cmd/ferry-init (static) to dst.
func BuildInit(dst string) error { return vmprereq.BuildInit(dst) }

// Disks are the block devices of one boot, in /dev/vdX order.
type Disks struct {
	Base    string // read-only base (or the single writable root)
	Scratch string // "" for none
	Extra   []string
}

// Boot is one VM.
type Boot struct {
	Dir     string
	Control string // the control socket (QEMU's chardev, server side)
	done    chan struct{}
	res     boottest.Result
	err     error
}

// Options tune a boot.
type Options struct {
	MemoryMB int
	// RawConfig replaces the marshalled run config (bad-input tests).
	RawConfig []byte
	// Append is added to the kernel command line.
	Append string
	// Extra QEMU arguments (devices).
	Extra []string
	// ExtraReadOnly attaches Disks.Extra[i] read-only when true.
	ExtraReadOnly []bool
	// Icount counts guest time in instructions (boottest.Config.Icount).
	Icount string
	// ACPI keeps the microvm's ACPI tables. By default they are off
	// (-M microvm,acpi=off): QEMU then lists the virtio-mmio devices on the
	// kernel command line (virtio_mmio.device=), as Firecracker does, which
	// every kernel understands; the built 6.1 kernel fails to load microvm's
	// DSDT ("Unable to load the System Description Tables") and would see no
	// disks. Init ends the VM with a reboot, which needs no ACPI. With the
	// Debian fallback kernel ACPI is always on.
	ACPI bool
}

// Start boots cfg with disks. It returns at once; Wait collects the result.
// The VM is killed when the test ends.
func (e *Env) Start(t testing.TB, cfg *guest.RunConfig, disks Disks, o Options) *Boot {
	t.Helper()
	dir := t.TempDir()
	b := &Boot{Dir: dir, Control: filepath.Join(dir, "control.sock"), done: make(chan struct{})}
	raw := o.RawConfig
	if raw == nil {
		var err error
		if raw, err = cfg.Marshal(); err != nil {
			t.Fatal(err)
		}
	}
	initrd := filepath.Join(dir, "initrd.cpio")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(func() { cancel(); <-b.done })
	if err := kernel.WriteInitrd(ctx, initrd, e.Shared, map[string][]byte{guest.ConfigPath: raw}); err != nil {
		t.Fatal(err)
	}
	var extra []string
	for i, d := range append([]string{disks.Base, disks.Scratch}, disks.Extra...) {
		if d == "" {
			continue
		}
		opt := fmt.Sprintf("id=d%d,file=%s,format=raw,if=none", i, d)
		if i == 0 && cfg != nil && cfg.Root.Mode == guest.RootOverlay || i >= 2 && i-2 < len(o.ExtraReadOnly) && o.ExtraReadOnly[i-2] {
			opt += ",readonly=on"
		}
		extra = append(extra, "-drive", opt, "-device", fmt.Sprintf("virtio-blk-device,drive=d%d", i))
	}
	extra = append(extra,
		"-device", "virtio-serial-device",
		"-chardev", "socket,id=ctl,path="+b.Control+",server=on,wait=off",
		"-device", "virtserialport,chardev=ctl,name="+guest.SerialPortName,
		"-device", "virtio-rng-device")
	// Debian's virtio_mmio module has no virtio_mmio.device= parameter
	// (VIRTIO_MMIO_CMDLINE_DEVICES is off): its devices come from ACPI.
	if !o.ACPI && !e.Fallback {
		extra = append(extra, "-M", "microvm,acpi=off")
	}
	extra = append(extra, o.Extra...)
	mem := o.MemoryMB
	if mem == 0 {
		mem = 256
	}
	go func() {
		defer close(b.done)
		b.res, b.err = boottest.Run(ctx, boottest.Config{Kernel: e.Kernel, Initrd: initrd, MemoryMB: mem, Append: o.Append, Extra: extra, Icount: o.Icount})
	}()
	return b
}

// EnvConsole names the environment variable that, when set, makes Wait
// copy every boot's console to stderr (debugging).
const EnvConsole = "FERRY_INITTEST_CONSOLE"

// Wait waits for QEMU to exit and returns what the console showed.
func (b *Boot) Wait() (boottest.Result, error) {
	<-b.done
	if os.Getenv(EnvConsole) != "" {
		fmt.Fprintf(os.Stderr, "--- console of %s\n%s", b.Dir, b.res.Console)
	}
	return b.res, b.err
}

// Dial connects to the control channel, retrying while QEMU starts.
func (b *Boot) Dial(ctx context.Context) (*guest.Client, error) {
	for {
		hctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		c, err := guest.Dial(hctx, b.Control, 0)
		cancel()
		if err == nil {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, errors.Join(err, ctx.Err())
		case <-b.done:
			if b.err == nil {
				return nil, fmt.Errorf("VM exited before the control channel answered: %w", err)
			}
			return nil, fmt.Errorf("VM exited before the control channel answered: %w (%w)", err, b.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ConsoleExit returns the exit status init printed on the console.
func ConsoleExit(console string) (guest.ExitStatus, bool) {
	for _, l := range strings.Split(console, "\n") {
		if s, ok := guest.ParseConsoleExit(l); ok {
			return s, true
		}
	}
	return guest.ExitStatus{}, false
}
