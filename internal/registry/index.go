package registry

import (
	"context"
	"encoding/json"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// indexMediaTypes are the manifest types whose children checkIndex checks.
var indexMediaTypes = map[string]bool{
	v1.MediaTypeImageIndex: true,
	"application/vnd.docker.distribution.manifest.list.v2+json": true,
}

// missingIndexChild returns the first child manifest of an image index that
// the repository lacks, or "" when all are there (or body is no index).
//
// distribution's own check resolves children only by sha256, so it would
// refuse an index of sha512-addressed manifests; ferry turns it off and
// checks here, resolving other algorithms through the caller's org's digest aliases.
func (s *Server) missingIndexChild(ctx context.Context, c *caller, internal, contentType string, body []byte) (string, error) {
	var idx struct {
		MediaType string          `json:"mediaType"`
		Manifests []v1.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(body, &idx); err != nil {
		return "", nil // not JSON: distribution will say so
	}
	if !indexMediaTypes[idx.MediaType] && !indexMediaTypes[contentType] {
		return "", nil
	}
	named, err := reference.WithName(internal)
	if err != nil {
		return "", err
	}
	repo, err := s.reg.Repository(ctx, named)
	if err != nil {
		return "", err
	}
	ms, err := repo.Manifests(ctx)
	if err != nil {
		return "", err
	}
	for _, d := range idx.Manifests {
		if d.Digest.Validate() != nil {
			return d.Digest.String(), nil
		}
		canonical := d.Digest
		if d.Digest.Algorithm() != digest.Canonical {
			alias, err := s.store.DigestAlias(ctx, c.token.OrgID, d.Digest.String())
			if err != nil {
				return d.Digest.String(), nil
			}
			canonical = digest.Digest(alias)
		}
		ok, err := ms.Exists(ctx, canonical)
		if err != nil || !ok {
			return d.Digest.String(), nil
		}
	}
	return "", nil
}
