package kernel

import (
	"debug/elf"
	"fmt"
	"os"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Guest is the guest kernel a machine boots and what its initramfs must
// carry for it.
type Guest struct {
	Path string
	// Fallback is set for Debian's modular kernel: its virtio drivers are
	// modules (ModulesDir, Modules: the closure of FallbackModules, in load
	// order) that go into the shared initramfs, and it finds its devices
	// through ACPI (the built kernel takes them from the command line).
	Fallback   bool
	ModulesDir string
	Modules    []string
}

// Select is the one place the guest kernel is chosen: the built vmlinux
// when one is completely installed, else Debian's fallback kernel with its
// module closure. It looks again on every call (a few stats and the ELF
// headers), so a kernel installed while a daemon runs is chosen from the
// next machine start on; a vmlinux whose segments run past its end (a copy
// still being written) is passed over for the fallback.
func Select(opts ...Option) (Guest, error) {
	k, err := FindKernel(opts...)
	if err == nil {
		if err = CheckELF(k); err == nil {
			return Guest{Path: k}, nil
		}
	}
	fb, ferr := FindFallback(opts...)
	if ferr != nil {
		return Guest{}, fmt.Errorf("guest kernel: %w (fallback: %w)", err, ferr)
	}
	mods, merr := ModuleClosure(fb.ModulesDir, FallbackModules)
	if merr != nil {
		return Guest{}, fmt.Errorf("guest kernel: %w (fallback kernel modules: %w)", err, merr)
	}
	return Guest{Path: fb.Kernel, Fallback: true, ModulesDir: fb.ModulesDir, Modules: mods}, nil
}

// CheckELF checks that path is an ELF file whose program segments all lie
// within it, i.e. that it was written completely. It reads the headers only.
func CheckELF(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return fmt.Errorf("%s is not a complete ELF kernel image: %w: %w", path, err, errdefs.ErrInvalidArgument)
	}
	if len(ef.Progs) == 0 {
		return fmt.Errorf("%s has no program segments: %w", path, errdefs.ErrInvalidArgument)
	}
	for _, p := range ef.Progs {
		if p.Off+p.Filesz > uint64(st.Size()) {
			return fmt.Errorf("%s is truncated (%d bytes; a segment ends at %d): still being installed? %w",
				path, st.Size(), p.Off+p.Filesz, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}
