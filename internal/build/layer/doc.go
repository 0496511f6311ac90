// Package layer makes and reads the OCI layers of a build.
//
//   - Write turns a tar stream into a gzip layer blob in the content
//     store, computing its digest and diff ID as it streams, with every
//     header normalized (PAX, no user/group names or atime/ctime, mtimes
//     clamped to SOURCE_DATE_EPOCH when one is given) so the same files
//     give the same digest.
//   - Tree indexes a stack of layers by path (headers only, OCI whiteouts
//     and opaque directories applied), so a COPY can tell whether its
//     destination exists, is a directory or a symlink to follow, and can
//     resolve --chown names against the image's /etc/passwd and /etc/group.
//   - Copy writes the layer of a COPY or ADD from a source tree (the build
//     context, or a stage's files) with Docker's semantics: directory
//     contents, wildcards, --chown, --chmod, --exclude, --parents, heredoc
//     sources and ADD's archive extraction. Checksum is the content
//     digest of the same selection (names, types, modes and bytes; not
//     mtimes), which keys the step cache.
package layer
