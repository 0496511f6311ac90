// Package build is ferry's Dockerfile builder: Dockerfile → plan → steps →
// layers → image, straight into the image cache.
//
// Builder.Build parses the Dockerfile (package dockerfile, on BuildKit's
// own parser), then builds the stages the target needs, in order. Each
// step has a cache key (package cache): its parent's key plus the step
// with its arguments expanded and the checksums of the content it reads.
// A hit reuses the layer; a miss makes it:
//
//   - COPY and ADD layers are written on the host from the build context
//     (package buildctx: received breakout-safe, .dockerignore applied),
//     from a stage's files or from an image (both flattened breakout-safe
//     by rootfs/apply), placed as the stage's filesystem (a layer.Tree
//     index) resolves the destination;
//   - RUN steps run in a builder VM (a Runner: ferry-init as the step
//     helper, see internal/guest/buildstep.go), booted at the stage's
//     first RUN that misses, from the ext4 base of the stage's root image,
//     at most once per stage. Each step runs on an overlay of the layers
//     below it (those made on the host are streamed in first) and its
//     upper comes back as the layer, overlayfs whiteouts turned into OCI
//     ones. A rebuild where everything hits boots nothing.
//
// Metadata instructions change the config only. The image is assembled
// (config with history and diff IDs, OCI manifest), scanned for secrets a
// later layer hides (package secretscan), and recorded in the image store
// with its tags only when every step succeeded: a failed or cancelled
// build tags nothing, and its blobs, held by a per-build lease, go at the
// next GC unless the step cache keeps them. With SOURCE_DATE_EPOCH every
// timestamp is the epoch and layer mtimes are clamped to it, so the same
// inputs give the same digest.
//
// On disk (paths.Root.Build()): contexts/<build>/ (the received context),
// work/<build>/ (flattened stages), mounts/<cache>.fts and .lock (RUN
// --mount=type=cache contents, one build at a time per cache). Recover
// clears what a killed daemon left.
package build
