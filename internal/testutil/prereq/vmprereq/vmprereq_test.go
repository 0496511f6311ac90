package vmprereq

import (
	"debug/buildinfo"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferryvm/ferry/internal/kernel"
)

// TestLibBootsTheTreesInit: after Lib, the kernel search (the daemon's
// too, through FERRY_LIB) finds a ferry-init built from this module, not
// an installed one, beside links to the installed kernels.
func TestLibBootsTheTreesInit(t *testing.T) {
	dir := Lib(t)
	if got := os.Getenv(kernel.EnvLib); got != dir {
		t.Fatalf("%s = %q, want %q", kernel.EnvLib, got, dir)
	}
	init, err := kernel.FindInit()
	if err != nil || init != filepath.Join(dir, kernel.InitName) {
		t.Fatalf("FindInit = %q, %v; want the one in %s", init, err, dir)
	}
	bi, err := buildinfo.ReadFile(init)
	if err != nil {
		t.Fatal(err)
	}
	if bi.Path != "github.com/ferryvm/ferry/cmd/ferry-init" || bi.Main.Path != "github.com/ferryvm/ferry" {
		t.Errorf("ferry-init built from %s (module %s), want this tree's cmd/ferry-init", bi.Path, bi.Main.Path)
	}
	if Init(t) != init {
		t.Errorf("Init built a second ferry-init")
	}
	for _, name := range []string{kernel.Vmlinux, kernel.FallbackDir} {
		if target, err := os.Readlink(filepath.Join(dir, name)); err != nil || target == "" {
			t.Errorf("%s is not a link to the installed kernel: %q %v", name, target, err)
		}
	}
}
