package kernel

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// Boot is what one machine start boots: the kernel, the machine's own
// initramfs, and whether that kernel finds its devices through ACPI.
type Boot struct {
	Kernel string `json:"kernel"`
	Initrd string `json:"initrd"`
	ACPI   bool   `json:"acpi,omitempty"`
}

// Assets hands every machine start its kernel and initramfs. The kernel is
// chosen again at each start (Select), and the shared archive (ferry-init
// plus the fallback kernel's modules) is rebuilt only when what it is made
// of changed, which a stat of each input tells; so a daemon booting
// Debian's fallback kernel boots the built one as soon as it is installed.
type Assets struct {
	dir  string // where shared archives are cached (paths.Root.Kernel)
	log  *slog.Logger
	opts []Option

	mu     sync.Mutex
	key    string // the inputs' stats when shared was built
	guest  Guest
	shared string
}

// NewAssets caches shared archives in dir; opts tune where kernels and
// ferry-init are looked for.
func NewAssets(dir string, log *slog.Logger, opts ...Option) *Assets {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Assets{dir: dir, log: log, opts: opts}
}

// Prepare chooses the kernel and writes machineDir/initrd.cpio: the shared
// archive followed by files (absolute guest path → content, e.g. the run
// config).
func (a *Assets) Prepare(ctx context.Context, machineDir string, files map[string][]byte) (Boot, error) {
	g, shared, err := a.current(ctx)
	if err != nil {
		return Boot{}, err
	}
	dst := filepath.Join(machineDir, "initrd.cpio")
	if err := WriteInitrd(ctx, dst, shared, files); err != nil {
		return Boot{}, fmt.Errorf("initramfs: %w", err)
	}
	return Boot{Kernel: g.Path, Initrd: dst, ACPI: g.Fallback}, nil
}

// current returns the chosen kernel and its shared archive, rebuilding the
// archive when the kernel, ferry-init or the modules changed.
func (a *Assets) current(ctx context.Context) (Guest, string, error) {
	init, err := FindInit(a.opts...)
	if err != nil {
		return Guest{}, "", fmt.Errorf("guest init: %w", err)
	}
	// The kernel's stat is enough to notice an install (a rename), and
	// ModuleClosure is only read again when modules.dep changed.
	k, kerr := FindKernel(a.opts...)
	fb, _ := FindFallback(a.opts...)
	key := statKey(init, k, fb.Kernel)
	if fb.ModulesDir != "" {
		key += statKey(filepath.Join(fb.ModulesDir, "modules.dep"))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.shared != "" && key == a.key {
		if _, err := os.Stat(a.shared); err == nil {
			return a.guest, a.shared, nil
		}
	}
	g, err := Select(a.opts...)
	if err != nil {
		return Guest{}, "", err
	}
	if kerr == nil && g.Fallback {
		a.log.Warn("booting the fallback kernel: the built one is not usable yet", "kernel", k, "err", CheckELF(k))
	}
	shared, err := BuildShared(ctx, a.dir, Shared{Init: init, ModulesDir: g.ModulesDir, Modules: g.Modules})
	if err != nil {
		return Guest{}, "", err
	}
	if a.shared != "" && a.guest.Path != g.Path {
		a.log.Info("guest kernel changed", "from", a.guest.Path, "to", g.Path)
	}
	// Archives of an older ferry-init or kernel are dead weight: machines
	// boot from their own copies.
	if err := PruneShared(a.dir, shared); err != nil {
		a.log.Warn("prune old shared initramfs archives", "dir", a.dir, "err", err)
	}
	a.key, a.guest, a.shared = key, g, shared
	return g, shared, nil
}

// statKey identifies the files at paths by name, size, modification time
// and inode ("" paths and missing files count too).
func statKey(paths ...string) string {
	var b strings.Builder
	for _, p := range paths {
		fmt.Fprintf(&b, "%s:", p)
		if fi, err := os.Stat(p); err == nil {
			fmt.Fprintf(&b, "%d.%d", fi.Size(), fi.ModTime().UnixNano())
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				fmt.Fprintf(&b, ".%d", st.Ino)
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}
