package kernel

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/errdefs"
)

func touch(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func env(m map[string]string) Option {
	return WithGetenv(func(k string) string { return m[k] })
}

func exe(p string) Option {
	return WithExecutable(func() (string, error) { return p, nil })
}

func TestSearchPath(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
		want []string
	}{
		{"env wins alone", []Option{env(map[string]string{EnvLib: "/opt/f"}), exe("/usr/bin/ferry"), WithDirs("/root/k")}, []string{"/opt/f"}},
		{"beside the binary", []Option{env(nil), exe("/opt/ferry/bin/ferry")}, []string{"/opt/ferry/bin", "/opt/ferry/lib/ferry", DefaultLib}},
		{"extra dirs first, duplicates dropped", []Option{env(nil), exe("/usr/local/bin/ferry"), WithDirs("/var/lib/ferry/kernel")},
			[]string{"/var/lib/ferry/kernel", "/usr/local/bin", DefaultLib}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SearchPath(tt.opts...); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("SearchPath = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFindOrder(t *testing.T) {
	root := t.TempDir()
	bin := filepath.Join(root, "bin")
	lib := filepath.Join(root, "lib", "ferry")
	touch(t, filepath.Join(bin, "ferry"))
	touch(t, filepath.Join(bin, InitName)) // make build puts ferry-init beside ferry
	touch(t, filepath.Join(lib, Vmlinux))  // make kernel with FERRY_LIB_DIR=<prefix>/lib/ferry
	touch(t, filepath.Join(lib, InitName))
	opts := []Option{env(nil), exe(filepath.Join(bin, "ferry"))}

	if got, err := FindInit(opts...); err != nil || got != filepath.Join(bin, InitName) {
		t.Errorf("FindInit = %q, %v; want the one beside the binary", got, err)
	}
	if got, err := FindKernel(opts...); err != nil || got != filepath.Join(lib, Vmlinux) {
		t.Errorf("FindKernel = %q, %v; want ../lib/ferry/vmlinux", got, err)
	}
	over := filepath.Join(root, "override")
	touch(t, filepath.Join(over, Vmlinux))
	if got, _ := FindKernel(append(opts, WithDirs(over))...); got != filepath.Join(over, Vmlinux) {
		t.Errorf("FindKernel with WithDirs = %q, want the override", got)
	}
	if got, _ := FindKernel(env(map[string]string{EnvLib: over}), exe(filepath.Join(bin, "ferry"))); got != filepath.Join(over, Vmlinux) {
		t.Errorf("FindKernel with %s = %q, want the override", EnvLib, got)
	}
}

func TestFindMissingSaysWhatToDo(t *testing.T) {
	empty := t.TempDir()
	opts := []Option{env(map[string]string{EnvLib: empty})}
	_, err := FindKernel(opts...)
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "make kernel") || !strings.Contains(err.Error(), empty) {
		t.Errorf("FindKernel error = %v; want not-found naming %s and `make kernel`", err, empty)
	}
	_, err = FindInit(opts...)
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "make install") {
		t.Errorf("FindInit error = %v; want not-found naming `make install`", err)
	}
	_, err = FindFallback(opts...)
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "kernel.sh fallback") {
		t.Errorf("FindFallback error = %v; want not-found naming scripts/kernel.sh fallback", err)
	}
}

func TestFindFallback(t *testing.T) {
	lib := t.TempDir()
	touch(t, filepath.Join(lib, FallbackDir, "vmlinuz"))
	touch(t, filepath.Join(lib, FallbackDir, "lib/modules/6.1.0-42-cloud-amd64/modules.dep"))
	fb, err := FindFallback(env(map[string]string{EnvLib: lib}))
	if err != nil {
		t.Fatal(err)
	}
	if fb.Kernel != filepath.Join(lib, FallbackDir, "vmlinuz") || filepath.Base(fb.ModulesDir) != "6.1.0-42-cloud-amd64" {
		t.Errorf("FindFallback = %+v", fb)
	}
}
