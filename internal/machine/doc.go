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
// *image.Store, *rootfs.Manager, *network.Network, *kernel.Assets and
// *guest.Client satisfy as they are (Hypervisor is internal/daemon's thin
// adapter over vmm.Drivers). What it owns is the policy between them: the
// state machine, restart policies, the run config built from a machine's
// config, which drives and NIC a VM gets, and the conversions from the
// guest's exit statuses and exec requests (convert.go), with exits read off
// the console's tail when the control channel could not deliver them.
package machine
