// Package vmm owns what is common to ferry's virtual machine monitors: the
// machine Spec every driver is fed, the small Driver interface, the Plan a
// driver turns a Spec into (argv, env, files — data that can be printed and
// tested without running anything), and the management of the VMM process
// itself: started in its own session so a daemon restart does not kill it,
// recorded in a pid file with its start time so a restarted daemon can
// re-adopt it safely, stopped with a grace period, and its console log
// size-capped and rotated.
//
// The drivers live beside it: vmm/qemu (qemu-system-x86_64 -M microvm, KVM or
// TCG) and vmm/firecracker (firecracker --no-api --config-file, optionally
// under jailer). This package does not know about images, rootfs, networking
// or the guest protocol; the caller (internal/machine) builds the Spec from
// those.
package vmm
