// Package content is a content-addressed blob store laid out as an OCI image
// layout (oci-layout, blobs/sha256/<hex>, ingest/). A blob becomes visible
// only after it was written to ingest/, fsynced, verified against its digest
// and size, and renamed into blobs/: no partial blob is ever readable.
//
// The API is deliberately narrow (Info/Open/Ingest/Writer/Delete/Walk) so the
// same store can back a registry's blob store later. It knows nothing of
// manifests, images or leases: package image owns those.
package content
