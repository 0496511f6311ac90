// Package image is ferry's image cache: it resolves references the way Docker
// does, pulls images from any distribution/OCI registry into a
// content-addressed store, serves stored images as go-containerregistry
// v1.Image values, and implements the cache verbs (list, inspect, tag,
// remove, prune, load, save, push) plus leases and garbage collection.
//
// On disk the cache is an OCI image layout under paths.Root.Content()
// (blobs written ingest → fsync → verify → rename by package content); its
// metadata lives in the daemon's bbolt database in this package's own
// top-level buckets:
//
//	images    manifest digest → record (platform, sizes, created, pulled, media type)
//	names     canonical reference (repo:tag or repo@digest) → manifest digest
//	leases    lease id → set of manifest digests it holds
//
// Ordering makes every operation crash-safe: blobs first, then config, then
// manifest, then the metadata record, so a killed pull or load never lists a
// partial image. Removing goes the other way (record, then unreferenced blobs
// by GC). GC never runs while an ingest that could reference a blob is in
// flight (one daemon owns a root; an in-process RW lock guards it).
//
// Consumers define the narrow interface they need at their end; the rootfs
// builder, for one, needs only
//
//	type images interface {
//		Image(ctx context.Context, ref string) (v1.Image, v1.Hash, error)
//		ImageByDigest(ctx context.Context, d v1.Hash) (v1.Image, error)
//		AddLease(ctx context.Context, id string, d v1.Hash) error
//		RemoveLease(ctx context.Context, id string) error
//	}
//
// and may read a layer's blob file directly at Content().Path(digest).
//
// Every change to the cache (pull, tag, untag, delete, load) and every
// push and save is published as an Event to Subscribe's subscribers; the
// last 256 are kept for Recent (docker events --since).
//
// It does not own the rootfs built from an image (internal/rootfs) nor the
// API/CLI surface (internal/api, internal/cli).
package image
