// Package vmm owns what is common to ferry's virtual machine monitors: the
// machine Spec every driver is fed, the small Driver interface, the Plan a
// driver turns a Spec into (argv, env, files — data that can be printed and
// tested without running anything), and the management of the VMM process
// itself: started in its own session so a daemon restart does not kill it,
// recorded in a pid file with its start time so a restarted daemon can
// re-adopt it safely, stopped with a grace period, and its console log
// size-capped and rotated. Drivers finds drivers by name: the driver that
// started a VMM (and its accelerator) is recorded in the pid file, so an
// adopted VMM is matched to its driver by that name. WriteRecord keeps, in
// the machine's vmm.json, the Plan a start actually executed (after a
// driver's own probes), so what is recorded is what ran.
//
// The drivers live beside it: vmm/qemu (qemu-system-x86_64 -M microvm, KVM or
// TCG) and vmm/firecracker (firecracker --no-api --config-file, optionally
// under jailer). This package does not know about images, rootfs, networking
// or the guest protocol; the caller (internal/machine) builds the Spec from
// those.
package vmm
