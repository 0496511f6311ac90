// Package kernel finds and assembles what a ferry micro-VM boots: the guest
// kernel (built by `make kernel` from kernel/ferry-6.1.fragment.config, or
// Debian's modular kernel as the fallback), ferry-init, and the initramfs that
// carries them into the guest.
//
// The initramfs is two newc cpio archives in one file:
//
//   - the shared archive (BuildShared): /init = ferry-init, and for the
//     fallback kernel its modules under /lib/modules/<version>/ plus
//     /lib/modules/ferry.order, the load order. It depends only on its inputs,
//     so it is built once and cached under its content hash;
//   - the per-machine archive (PerMachine): the run config and any other small
//     files, a few KB, built for each machine start.
//
// Linux unpacks concatenated archives in order (each starts 4-byte aligned;
// zero padding between them is skipped), so WriteInitrd appends the
// per-machine archive to a copy of the shared one; QEMU and Firecracker take
// that one file as their initrd.
//
// Select is the one place the guest kernel is chosen (the built vmlinux when
// it is completely installed, else the fallback with its module closure);
// Assets applies it at every machine start and keeps the shared archive
// that goes with the choice, so a kernel installed while a daemon runs is
// booted from the next start on.
//
// The package owns no daemon state beyond that cache and does not build the
// kernel: the build and its cache live in scripts/kernel.sh (see
// docs/kernel.md).
package kernel
