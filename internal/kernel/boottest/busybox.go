package boottest

import (
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ferryvm/ferry/internal/kernel"
)

// busyboxScript is a test /init; %s is the list of guest files to print. It
// reports "virtio-drivers <driver of each virtio device, sorted by device>".
const busyboxScript = `#!/bin/busybox sh
export PATH=/bin
/bin/busybox mount -t proc proc /proc
read up idle </proc/uptime
echo "` + Marker + ` init uptime=$up"
if [ -f ` + kernel.ModulesOrderPath + ` ]; then
  while read m; do /bin/busybox insmod "$m" || echo "` + Marker + ` insmod $m failed"; done <` + kernel.ModulesOrderPath + `
  read up idle </proc/uptime
  echo "` + Marker + ` modules uptime=$up"
fi
/bin/busybox mount -t sysfs sysfs /sys
drivers=""
for d in /sys/bus/virtio/devices/*; do
  [ -e "$d/driver" ] && drivers="$drivers $(/bin/busybox basename "$(/bin/busybox readlink "$d/driver")")"
done
echo "` + Marker + ` virtio-drivers$drivers"
for f in %s; do
  [ -f "$f" ] && echo "` + Marker + ` file $f=$(/bin/busybox cat "$f")"
done
echo "` + Marker + ` done"
/bin/busybox poweroff -f
`

// BusyboxShared returns a kernel.Shared whose /init is a busybox shell
// script (written into dir) that prints Marker lines: its uptime, the module
// loading when mods is set (dir and order as in kernel.Shared), and the
// contents of each guest file in show, then powers off. It needs a static
// busybox (Debian's busybox-static) at /bin/busybox.
func BusyboxShared(dir string, show []string, modulesDir string, modules []string) (kernel.Shared, error) {
	bb, err := StaticBusybox()
	if err != nil {
		return kernel.Shared{}, err
	}
	list := ""
	for _, f := range show {
		list += " " + f
	}
	init := filepath.Join(dir, "busybox-init")
	if err := os.WriteFile(init, []byte(fmt.Sprintf(busyboxScript, list)), 0o755); err != nil { //nolint:gosec // the guest runs it as /init: it must be executable
		return kernel.Shared{}, err
	}
	return kernel.Shared{
		Init:       init,
		ModulesDir: modulesDir,
		Modules:    modules,
		Files: []kernel.Entry{
			{Header: kernel.Header{Name: "bin", Mode: fs.ModeDir | 0o755}},
			{Header: kernel.Header{Name: "bin/busybox", Mode: 0o755}, Source: bb},
		},
	}, nil
}

// StaticBusybox returns the path of a statically linked busybox (an ELF
// without an interpreter).
func StaticBusybox() (string, error) {
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		static := true
		for _, ph := range f.Progs {
			if ph.Type == elf.PT_INTERP {
				static = false
			}
		}
		_ = f.Close() // opened only for reading
		if static {
			return p, nil
		}
	}
	return "", fmt.Errorf("no static busybox at /bin/busybox (install Debian's busybox-static)")
}
