package kernel

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// File names in an install directory.
const (
	Vmlinux  = "vmlinux"    // uncompressed ELF with a PVH entry: QEMU microvm -kernel, Firecracker
	BzImage  = "bzImage"    // compressed boot image of the same build
	InitName = "ferry-init" // the guest init, /init in the shared initramfs

	// FallbackDir holds Debian's modular kernel when it is installed
	// (scripts/kernel.sh fallback): fallback/vmlinuz and
	// fallback/lib/modules/<version>/.
	FallbackDir = "fallback"
)

// EnvLib names the environment variable that, when set, is the only directory
// searched.
const EnvLib = "FERRY_LIB"

// DefaultLib is where `make kernel` and `make install` put the kernel and
// ferry-init.
const DefaultLib = "/usr/local/lib/ferry"

// Option tunes the search.
type Option func(*options)

type options struct {
	dirs   []string
	getenv func(string) string
	exe    func() (string, error)
}

// WithDirs puts dirs first in the search path (e.g. a data root's kernel/
// override directory).
func WithDirs(dirs ...string) Option {
	return func(o *options) { o.dirs = append(o.dirs, dirs...) }
}

// WithGetenv replaces os.Getenv (tests).
func WithGetenv(f func(string) string) Option { return func(o *options) { o.getenv = f } }

// WithExecutable replaces os.Executable (tests).
func WithExecutable(f func() (string, error)) Option { return func(o *options) { o.exe = f } }

// SearchPath returns the directories searched, in order: $FERRY_LIB alone
// when set; otherwise the WithDirs directories, the directory of the running
// binary, its ../lib/ferry, and DefaultLib.
func SearchPath(opts ...Option) []string {
	o := options{getenv: os.Getenv, exe: os.Executable}
	for _, opt := range opts {
		opt(&o)
	}
	if d := o.getenv(EnvLib); d != "" {
		return []string{d}
	}
	dirs := append([]string(nil), o.dirs...)
	if exe, err := o.exe(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		bin := filepath.Dir(exe)
		dirs = append(dirs, bin, filepath.Join(bin, "..", "lib", "ferry"))
	}
	dirs = append(dirs, DefaultLib)
	seen := map[string]bool{}
	out := dirs[:0]
	for _, d := range dirs {
		d = filepath.Clean(d)
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// Find returns the first regular file called name in the search path.
func Find(name string, opts ...Option) (string, error) {
	dirs := SearchPath(opts...)
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in %s (%s): %w",
		name, strings.Join(dirs, ", "), remedy(name), errdefs.ErrNotFound)
}

func remedy(name string) string {
	switch {
	case name == InitName:
		return "build and install it with: make install, or set " + EnvLib
	case strings.HasPrefix(name, FallbackDir):
		return "install Debian's kernel with: scripts/kernel.sh fallback"
	default:
		return "build and install the guest kernel with: make kernel"
	}
}

// FindKernel returns the guest kernel ferry boots by default: the built
// vmlinux.
func FindKernel(opts ...Option) (string, error) { return Find(Vmlinux, opts...) }

// FindInit returns the ferry-init binary.
func FindInit(opts ...Option) (string, error) { return Find(InitName, opts...) }

// Fallback is Debian's modular kernel and its module tree.
type Fallback struct {
	Kernel     string // vmlinuz
	ModulesDir string // lib/modules/<version>
}

// FindFallback returns the installed fallback kernel.
func FindFallback(opts ...Option) (Fallback, error) {
	k, err := Find(filepath.Join(FallbackDir, "vmlinuz"), opts...)
	if err != nil {
		return Fallback{}, err
	}
	base := filepath.Join(filepath.Dir(k), "lib", "modules")
	ents, err := os.ReadDir(base)
	if err != nil {
		return Fallback{}, fmt.Errorf("fallback kernel modules: %w", err)
	}
	for _, e := range ents {
		if e.IsDir() {
			return Fallback{Kernel: k, ModulesDir: filepath.Join(base, e.Name())}, nil
		}
	}
	return Fallback{}, fmt.Errorf("fallback kernel modules: none in %s: %w", base, errdefs.ErrNotFound)
}
