package image

import "context"

// Pull fetches ref (resolved as Docker does) into the cache and names it.
// A manifest list or index is resolved to one platform (PullPlatform, else
// the store's default); an absent platform fails with an error listing the
// available ones. Blobs already cached are not fetched; the rest are fetched
// in parallel, verified while streaming, and committed before the config,
// the manifest and finally the metadata record, so a failed or killed pull
// never lists a partial image. On failure the blobs this pull added are
// removed again (partial downloads stay in ingest/ so a retry resumes them).
func (s *Store) Pull(ctx context.Context, ref string, opts ...PullOption) (*PullResult, error) {
	return nil, errNotImplemented
}
