// Package apply turns an OCI image's layers into one file tree with OCI
// layer semantics (whiteouts, opaque directories, hardlinks, symlinks,
// devices, fifos, xattrs, special mode bits, ownership, mtimes, PAX/GNU
// long names), verifying every layer's uncompressed digest against the
// config's diff_ids while it streams.
//
// It has two outputs that share one implementation of the semantics:
//
//   - Flatten writes the final tree as a single tar stream with no
//     whiteouts left (parents before children, hardlinks after their
//     target), which internal/rootfs/ext4 turns into an ext4 base.
//     Layers are decompressed in parallel into spools (memory, then
//     unlinked files; zero blocks stay holes) and replayed in order into
//     an in-memory tree as they arrive, so nothing is unpacked to disk.
//   - ApplyDir applies the layers to a host directory with a
//     breakout-safe, fd-relative walk (openat2 RESOLVE_IN_ROOT, and an
//     equivalent userspace walk where a missing parent must be created):
//     no path is ever joined and handed to an os call, symlinks in parent
//     paths resolve inside the root, and the final component is never
//     followed (no chmod/chown/write through a symlink).
//
// Layers are attacker-controlled. Names with "..", forged overlay xattrs,
// invalid whiteouts, non-directory roots, out-of-range devices, missing
// hardlink targets, diff_id mismatches, entries beyond Linux's own limits
// (PATH_MAX, XATTR_*_MAX) and layer sets beyond the Limits (stream,
// sparse, entries, metadata, layers, depth, compression ratio, free
// space) fail with an *EntryError naming the layer and the entry,
// wrapping errdefs.ErrInvalidArgument. Memory stays bounded by
// Limits.MaxMetadata plus the spool memory, whatever the layers claim.
//
// The package does not pull images, cache anything or build filesystems.
package apply
