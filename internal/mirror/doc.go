// Package mirror is the daemon's host-local registry mirror: the OCI
// distribution API (push and pull) served straight over ferry's own image
// store, so an image pushed to it is listed by `ferry images` the moment
// its manifest is accepted and starts machines without a pull.
//
// Blobs are streamed to disk, never held in memory: a monolithic upload
// goes straight into the content store's ingest (digest verified, fsynced,
// renamed by content.Writer); a chunked session appends to a file under the
// mirror's upload directory, hashing as it goes, and is committed through
// the same content store path when the client closes it with its digest. A
// blob whose bytes do not hash to the digest the client names is refused
// with DIGEST_INVALID and never enters the store.
//
// A manifest PUT records the image in the image store (image.Store.PutImage)
// under the name the client pushed: the repository path, ns/path when the
// client passes containerd's ?ns= convention, or the upstream a configured
// mapping (Upstream) names; images under an upstream's name are pushed
// there by the write-back (WriteBack). Indexes and artifact manifests are
// kept under their tags too (image.Store.PutManifest), and blobs are
// leased from their upload until a manifest references them.
package mirror
