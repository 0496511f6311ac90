// Package rootfs turns cached images into machine root filesystems.
//
// For each image (keyed by manifest digest) it builds, once, a read-only
// ext4 base of the flattened image under <root>/rootfs/bases (built in
// <root>/rootfs/tmp, fsynced, renamed; concurrent requests share one
// build). For each machine it prepares, in O(1) of image size, either
//
//   - ModeOverlay (default): the shared base plus a sparse writable
//     scratch ext4 (machines/<id>/scratch.ext4, cloned from a formatted
//     template, ~0 bytes allocated); ferry-init mounts overlayfs with the
//     base as lower and upper/work directories on the scratch; or
//   - ModePersistent: a writable clone of the base (machines/<id>/rootfs.ext4;
//     FICLONE reflink on XFS/btrfs, a sparse copy otherwise), grown to the
//     requested size.
//
// Records live in the "rootfs" bucket of the daemon's bbolt database:
// bases and machine→base references, each written before its side effects
// so a crash at any point is cleaned up by New and GC. A base holds a
// lease on its image through ImageLeaser; a machine holds its base through
// its record. Layer semantics and the breakout-safe applier are in
// rootfs/apply; ext4 writing is in rootfs/ext4.
//
// Given the image cache (WithImages), PrepareImage builds a machine's base
// on demand, and RemoveImage and PruneImages let images go: a base is a
// cache of its image, so an unused one is dropped before the image is. The
// package does not pull images or start machines.
package rootfs
