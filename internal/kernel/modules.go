package kernel

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// FallbackModules are the modules a ferry guest needs from Debian's modular
// cloud kernel (which builds ext4 in). Their dependencies are added by
// ModuleClosure.
var FallbackModules = []string{
	"virtio_mmio",                // devices on QEMU microvm and Firecracker (ACPI or cmdline)
	"virtio_blk",                 // root, scratch and volume disks
	"virtio_net",                 // eth0
	"virtio_console",             // the control channel under QEMU (virtio-serial)
	"virtio_rng",                 // entropy
	"vmw_vsock_virtio_transport", // the control channel under Firecracker
	"overlay",                    // read-only base + writable scratch
	"dm_crypt",                   // encrypted volumes (LUKS2 opened by ferry-init)
	"xts",                        // their cipher mode, aes-xts-plain64
	"aesni_intel",                // their cipher (AES-NI; TCG emulates it under -cpu max)
	"virtiofs",                   // bind mounts of host directories (virtio-fs, FUSE)
}

// ModulesOrderPath is where the shared initramfs lists the modules to load:
// one absolute path per line, in load order (dependencies first), each loaded
// with finit_module. internal/guest.ModulesOrderPath names the same file.
const ModulesOrderPath = "/lib/modules/ferry.order"

// ModuleClosure returns, for the modules named in want, the module files
// (relative to modDir, as in modDir/modules.dep) with everything they depend
// on, in an order where each module comes after its dependencies. Names
// match with '-' and '_' alike; a module built into the kernel
// (modules.builtin) is skipped; an unknown one is an error.
func ModuleClosure(modDir string, want []string) ([]string, error) {
	deps, err := readModulesDep(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	builtin, _ := readModulesBuiltin(filepath.Join(modDir, "modules.builtin"))
	byName := map[string]string{}
	for p := range deps {
		byName[moduleName(p)] = p
	}
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(p string) error
	visit = func(p string) error {
		switch state[p] {
		case 1:
			return fmt.Errorf("modules.dep: dependency cycle at %s: %w", p, errdefs.ErrInvalidArgument)
		case 2:
			return nil
		}
		state[p] = 1
		for _, d := range deps[p] {
			if _, ok := deps[d]; !ok {
				return fmt.Errorf("modules.dep: %s needs %s, which is not listed: %w", p, d, errdefs.ErrNotFound)
			}
			if err := visit(d); err != nil {
				return err
			}
		}
		state[p] = 2
		order = append(order, p)
		return nil
	}
	for _, w := range want {
		n := normalize(w)
		p, ok := byName[n]
		if !ok {
			if builtin[n] {
				continue
			}
			return nil, fmt.Errorf("module %s: not in %s: %w", w, modDir, errdefs.ErrNotFound)
		}
		if err := visit(p); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// readModulesDep parses modules.dep: "path: dep dep ...", paths relative to
// the modules directory.
func readModulesDep(path string) (map[string][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read modules.dep: %w", err)
	}
	defer f.Close()
	deps := map[string][]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		mod, rest, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%s: bad line %q: %w", path, line, errdefs.ErrInvalidArgument)
		}
		deps[mod] = strings.Fields(rest)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return deps, nil
}

func readModulesBuiltin(path string) (map[string]bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]bool{}
	for _, l := range strings.Fields(string(b)) {
		m[moduleName(l)] = true
	}
	return m, nil
}

// moduleName turns "kernel/drivers/virtio/virtio-mmio.ko.xz" into "virtio_mmio".
func moduleName(p string) string {
	b := filepath.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return normalize(b)
}

func normalize(n string) string { return strings.ReplaceAll(n, "-", "_") }
