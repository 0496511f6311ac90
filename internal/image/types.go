package image

import (
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Summary is one cached image (one manifest), as `ferry images` lists it.
type Summary struct {
	// ID is the manifest digest of the platform-specific image.
	ID v1.Hash `json:"id"`
	// RepoTags are the tag references pointing at it
	// (docker.io/library/alpine:latest). Empty for a dangling image.
	RepoTags []string `json:"repo_tags"`
	// RepoDigests are digest references (repo@sha256:…) it was pulled or
	// loaded by; the digest may be an index's when pulled from a manifest list.
	RepoDigests []string `json:"repo_digests"`
	// MediaType is the manifest's media type (Docker schema2 or OCI).
	MediaType types.MediaType `json:"media_type"`
	// Platform is the image's os/architecture/variant.
	Platform v1.Platform `json:"platform"`
	// Size is the compressed size: manifest + config + layers.
	Size int64 `json:"size"`
	// Created is the image config's creation time (zero when unset).
	Created time.Time `json:"created"`
	// Pulled is when the image entered the cache (pull or load).
	Pulled time.Time `json:"pulled"`
	// Leases is how many leases hold the image.
	Leases int `json:"leases"`
	// Upstream is the write-back state of tags pushed to the host-local
	// mirror under an upstream name (internal/mirror), by tag.
	Upstream map[string]UpstreamState `json:"upstream,omitempty"`
}

// Dangling reports whether no tag names the image (as Docker: digest
// references alone do not keep an image from being dangling).
func (s Summary) Dangling() bool { return len(s.RepoTags) == 0 }

// Details is `ferry image inspect`: the summary plus config and layers.
type Details struct {
	Summary
	// Config is the parsed image config.
	Config *v1.ConfigFile `json:"config"`
	// ConfigDigest is the digest of the config blob.
	ConfigDigest v1.Hash `json:"config_digest"`
	// Layers are the layers in order, base first.
	Layers []LayerInfo `json:"layers"`
}

// LayerInfo is one layer of an inspected image.
type LayerInfo struct {
	Digest    v1.Hash         `json:"digest"`  // compressed blob digest
	DiffID    v1.Hash         `json:"diff_id"` // uncompressed tar digest (from the config)
	Size      int64           `json:"size"`    // compressed size
	MediaType types.MediaType `json:"media_type"`
}

// State is the state of one blob in a pull or push.
type State string

// Blob states reported in Progress events.
const (
	StateWaiting     State = "waiting"     // queued behind the concurrency limit
	StateDownloading State = "downloading" // bytes flowing from the registry
	StateVerifying   State = "verifying"   // fsync + digest check before commit
	StateDone        State = "done"        // committed to the store
	StateExists      State = "exists"      // already in the store (or registry, on push): not transferred
	StatePushing     State = "pushing"     // bytes flowing to the registry
)

// Progress is one progress event for one blob of a pull or push.
type Progress struct {
	Ref    string  `json:"ref"`    // the reference being pulled/pushed
	Digest v1.Hash `json:"digest"` // the blob
	Kind   string  `json:"kind"`   // "layer", "config" or "manifest"
	Total  int64   `json:"total"`  // blob size in bytes
	Done   int64   `json:"done"`   // bytes transferred (or verified) so far
	State  State   `json:"state"`
}

// ProgressFunc receives progress events. It is called from several
// goroutines at once and must not block for long.
type ProgressFunc func(Progress)

// PullResult reports what a pull did.
type PullResult struct {
	Image Summary `json:"image"`
	// Ref is the canonical reference pulled (docker.io/library/alpine:latest).
	Ref string `json:"ref"`
	// BytesFetched counts blob bytes read from the registry (manifests excluded).
	BytesFetched int64 `json:"bytes_fetched"`
	// BlobsFetched and BlobsExisting count blobs downloaded vs already cached.
	BlobsFetched  int `json:"blobs_fetched"`
	BlobsExisting int `json:"blobs_existing"`
}

// RemoveReport is what `ferry rmi` did for one reference.
type RemoveReport struct {
	Untagged []string  `json:"untagged"` // references removed
	Deleted  []v1.Hash `json:"deleted"`  // images (manifest digests) deleted
}

// PruneReport is what `ferry image prune` did.
type PruneReport struct {
	Deleted    []v1.Hash `json:"deleted"`     // images removed
	BytesFreed int64     `json:"bytes_freed"` // blob bytes removed from disk
}

// GCReport is what a garbage collection removed.
type GCReport struct {
	Blobs      int   `json:"blobs"`
	BytesFreed int64 `json:"bytes_freed"`
}

// Loaded is one image a Load put in the cache.
type Loaded struct {
	ID   v1.Hash  `json:"id"`
	Refs []string `json:"refs"` // references it was tagged with (may be empty)
}
