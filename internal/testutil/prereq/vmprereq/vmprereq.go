// Package vmprereq checks what a test that boots a VM needs, on top of
// package prereq: QEMU, a guest kernel (the built one, or Debian's
// fallback), a static busybox, and a ferry-init built from the tree under
// test. It skips with prereq's lines when something is missing.
//
// A VM test tests its own tree: Init builds cmd/ferry-init once per test
// binary, and Lib makes a FERRY_LIB directory that holds it beside links to
// the installed kernels (so a kernel installed while the tests run is
// seen), and points FERRY_LIB at it for the whole process, daemons the
// test starts included. Whatever ferry-init /usr/local/lib/ferry holds is
// never booted by a test.
//
// It is apart from prereq because it imports internal/kernel, whose own
// tests use prereq.
package vmprereq

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/kernel"
	"github.com/ferryvm/ferry/internal/kernel/boottest"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// Kernel is the guest kernel a VM test boots: the one a daemon would
// (kernel.Select).
type Kernel = kernel.Guest

const (
	kernelRemedy   = "run scripts/setup.sh (make kernel builds it, scripts/kernel.sh fallback fetches Debian's)"
	builtRemedy    = "run scripts/setup.sh or make kernel (about 7 minutes on 2 cores; cached afterwards)"
	fallbackRemedy = "run scripts/kernel.sh fallback (scripts/setup.sh does)"
)

// GuestKernel returns the built kernel when there is one, else Debian's
// fallback with its module closure; it skips t when there is neither.
func GuestKernel(t testing.TB) Kernel {
	t.Helper()
	g, err := kernel.Select()
	if _, kerr := kernel.FindKernel(); err != nil && errors.Is(kerr, errdefs.ErrNotFound) && errors.Is(err, errdefs.ErrNotFound) {
		prereq.Missing(t, fmt.Sprintf("a guest kernel (neither %s nor %s/vmlinuz in %s)", kernel.Vmlinux, kernel.FallbackDir, libDirs()), kernelRemedy)
	}
	if err != nil {
		prereq.Missing(t, "a guest kernel ("+err.Error()+")", kernelRemedy)
	}
	return g
}

// BuiltKernel returns the built kernel file name (kernel.Vmlinux or
// kernel.BzImage), or skips t.
func BuiltKernel(t testing.TB, name string) string {
	t.Helper()
	k, err := kernel.Find(name)
	if err != nil {
		prereq.Missing(t, fmt.Sprintf("the built guest kernel (no %s in %s)", name, libDirs()), builtRemedy)
	}
	return k
}

// FallbackKernel returns Debian's fallback kernel, or skips t.
func FallbackKernel(t testing.TB) kernel.Fallback {
	t.Helper()
	fb, err := kernel.FindFallback()
	if err != nil {
		prereq.Missing(t, fmt.Sprintf("the fallback kernel (no %s/vmlinuz or modules in %s)", kernel.FallbackDir, libDirs()), fallbackRemedy)
	}
	return fb
}

// Busybox returns a static busybox for a test initramfs, or skips t.
func Busybox(t testing.TB) string {
	t.Helper()
	bb, err := boottest.StaticBusybox()
	if err != nil {
		prereq.Missing(t, "a static busybox ("+err.Error()+")", prereq.Remedy("busybox"))
	}
	return bb
}

// Require skips t unless a ferry daemon can boot machines here: not
// -short, root, QEMU, a guest kernel; and it makes the process boot the
// tree's ferry-init (Lib).
func Require(t testing.TB) {
	t.Helper()
	prereq.Short(t, "boots VMs")
	prereq.Root(t, "VMs get TAP devices and disks")
	prereq.QEMU(t)
	GuestKernel(t)
	Lib(t)
}

var (
	initOnce sync.Once
	initPath string
	initErr  error

	libOnce sync.Once
	libDir  string
	libErr  error
)

// Init returns a ferry-init built from the tree under test, building it on
// first use (once per test binary). It skips t without the go tool and
// fails it when the build fails.
func Init(t testing.TB) string {
	t.Helper()
	prereq.Tool(t, "go")
	initOnce.Do(func() {
		var dir string
		if dir, initErr = scratchDir(); initErr == nil {
			initPath = filepath.Join(dir, kernel.InitName)
			initErr = BuildInit(initPath)
		}
	})
	if initErr != nil {
		t.Fatal(initErr)
	}
	return initPath
}

// Lib returns a directory laid out like the install directory
// (kernel.DefaultLib): the tree's ferry-init (Init) and links to the
// installed kernel files and fallback kernel. On first use it sets
// FERRY_LIB to it, so kernel.Find* in this process and in the processes
// it starts (ferry daemons) search it alone.
func Lib(t testing.TB) string {
	t.Helper()
	init := Init(t)
	libOnce.Do(func() {
		installed := kernel.SearchPath()
		dir := filepath.Dir(init)
		for _, name := range []string{kernel.Vmlinux, kernel.BzImage, "kernel.config", "kernel.hash", kernel.FallbackDir} {
			// The first installed copy, or the default install path:
			// a dangling link resolves once the kernel is installed.
			target := filepath.Join(kernel.DefaultLib, name)
			for _, d := range installed {
				if p := filepath.Join(d, name); d != dir && exists(p) {
					target = p
					break
				}
			}
			if libErr = os.Symlink(target, filepath.Join(dir, name)); libErr != nil {
				return
			}
		}
		libDir = dir
		libErr = os.Setenv(kernel.EnvLib, dir)
	})
	if libErr != nil {
		t.Fatal(libErr)
	}
	return libDir
}

// libDirs names where the kernels are looked for, for a skip line: the
// install directory ($FERRY_LIB when set; the test binary's own directory,
// also searched, is noise here).
func libDirs() string {
	if d := os.Getenv(kernel.EnvLib); d != "" {
		if d == libDir {
			return kernel.DefaultLib + " (linked from " + d + ")"
		}
		return d
	}
	return kernel.DefaultLib
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// BuildInit builds cmd/ferry-init (static, as make build does) to dst.
func BuildInit(dst string) error {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", dst, "./cmd/ferry-init")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build ferry-init from the tree: %w\n%s", err, out)
	}
	return nil
}

// scratchPrefix names the per-process directories scratchDir makes.
const scratchPrefix = "ferry-vmprereq-"

// scratchDir makes this test binary's directory, <tmp>/ferry-vmprereq-<pid>,
// removing those of test binaries that have exited (a test binary has no
// hook that runs when it exits).
func scratchDir() (string, error) {
	tmp := os.TempDir()
	old, _ := filepath.Glob(filepath.Join(tmp, scratchPrefix+"*"))
	for _, d := range old {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), scratchPrefix))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
			_ = os.RemoveAll(d)
		}
	}
	dir := filepath.Join(tmp, fmt.Sprintf("%s%d", scratchPrefix, os.Getpid()))
	_ = os.RemoveAll(dir)
	return dir, os.MkdirAll(dir, 0o755)
}
