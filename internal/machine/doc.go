// Package machine owns ferry's machines: their durable state machine, their
// store, and the daemon-side lifecycle that ties the other packages together.
//
// Each machine moves through
//
//	created → starting → started → stopping → stopped → destroying → destroyed
//
// (plus failed). Every transition is written to bbolt before its side
// effects, and every side effect is idempotent and keyed by the machine ID
// (prepare disks, attach network, start VMM, release ...), so a daemon
// killed at any line either resumes or rolls back when Manager.Reconcile runs
// on the next start (the flyd pattern). A per-machine lock turns concurrent
// conflicting operations into errdefs.ErrConflict instead of interleaving
// half-transitions.
//
// The package does not pull images, build disks, plumb networks, boot VMMs
// or speak the guest protocol itself: it drives small interfaces (Images,
// Rootfs, Network, Boot, Hypervisor, Control in deps.go) that
// internal/daemon adapts to internal/image, internal/rootfs,
// internal/network, internal/kernel, internal/vmm and internal/guest.
package machine
