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
	for _, m := range ModuleOrder(b) {
		if err := finitModule(m); err != nil {
			return fmt.Errorf("load module %s: %w", m, err)
		}
		log.Infof("loaded %s", m)
	}
	return nil
}

func finitModule(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	flags := 0
	if strings.HasSuffix(p, ".xz") || strings.HasSuffix(p, ".zst") || strings.HasSuffix(p, ".gz") {
		flags |= unix.MODULE_INIT_COMPRESSED_FILE
	}
	err = unix.FinitModule(int(f.Fd()), "", flags)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}
