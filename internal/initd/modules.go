package initd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/guest"
)

// ModuleOrder parses guest.ModulesOrderPath: one module file per line,
// absolute or relative to /lib/modules/; blank lines and # comments skipped.
func ModuleOrder(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' {
			continue
		}
		if !path.IsAbs(l) {
			l = path.Join("/lib/modules", l)
		}
		out = append(out, l)
	}
	return out
}

// loadModules loads the fallback kernel's modules, when the initramfs lists
// any. A module that is already loaded (or built in) is fine.
func loadModules(log *Logger) error {
	b, err := os.ReadFile(guest.ModulesOrderPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	for _, m := range ModuleOrder(b) {
		if err := finitModule(m, ModuleParams(string(cmdline), m)); err != nil {
			return fmt.Errorf("load module %s: %w", m, err)
		}
		log.Infof("loaded %s", m)
	}
	return nil
}

// ModuleParams returns the parameters the kernel command line gives the
// module at path p ("virtio_mmio.device=512@0xfeb00e00:12" →
// "device=512@0xfeb00e00:12"), as modprobe passes them: the kernel applies
// "module.param" arguments itself only to built-in code. Under Firecracker
// and QEMU microvm without ACPI, virtio-mmio devices are described only
// that way.
func ModuleParams(cmdline, p string) string {
	name := path.Base(p)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		name = strings.TrimSuffix(name, ext)
	}
	name = strings.ReplaceAll(strings.TrimSuffix(name, ".ko"), "-", "_")
	var params []string
	for _, arg := range cmdlineArgs(cmdline) {
		mod, param, ok := strings.Cut(arg, ".")
		if ok && param != "" && !strings.ContainsRune(mod, '=') && strings.ReplaceAll(mod, "-", "_") == name {
			params = append(params, param)
		}
	}
	return strings.Join(params, " ")
}

// cmdlineArgs splits a kernel command line as the kernel does: on blanks,
// except inside double quotes (which stay in the argument).
func cmdlineArgs(s string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, c := range s {
		switch {
		case c == '"':
			quoted = !quoted
			cur.WriteRune(c)
		case (c == ' ' || c == '\t' || c == '\n') && !quoted:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(c)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

func finitModule(p, params string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	flags := 0
	if strings.HasSuffix(p, ".xz") || strings.HasSuffix(p, ".zst") || strings.HasSuffix(p, ".gz") {
		flags |= unix.MODULE_INIT_COMPRESSED_FILE
	}
	err = unix.FinitModule(int(f.Fd()), params, flags)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}
