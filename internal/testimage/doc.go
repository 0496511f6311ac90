// Package testimage builds OCI images locally, without the internet, for
// ferry's tests and benchmarks, and serves them from registries started in
// the test process (go-containerregistry's pkg/registry) or as a real
// process (Debian's docker-registry).
//
// Images:
//   - Busybox: Debian's busybox-static as /bin/busybox with a symlink per
//     applet, /etc/passwd and /etc/group with root and a non-root user
//     "ferry" (1000:1000), /tmp, so VM tests can run `sh -c`.
//   - Layered: three layers exercising a whiteout (.wh.file) and an opaque
//     directory (.wh..wh..opq).
//   - Index: a multi-platform index of small images.
//   - Big: a deterministic ~100 MB (compressed), 4-layer image for benches.
//   - Random/FromFiles: small images from a seed or an explicit file list.
//
// Everything is deterministic: the same call yields the same digests.
package testimage
