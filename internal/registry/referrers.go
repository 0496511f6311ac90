package registry

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// manifestHead is the part of any manifest the referrers API needs.
type manifestHead struct {
	MediaType    string            `json:"mediaType"`
	ArtifactType string            `json:"artifactType"`
	Config       *v1.Descriptor    `json:"config"`
	Subject      *v1.Descriptor    `json:"subject"`
	Annotations  map[string]string `json:"annotations"`
}

// manifestSubject returns the subject digest of a manifest body, or "".
func manifestSubject(body []byte) string {
	var m manifestHead
	if json.Unmarshal(body, &m) != nil || m.Subject == nil {
		return ""
	}
	return m.Subject.Digest.String()
}

// serveReferrers implements the OCI referrers API, which distribution
// lacks: an image index of the repository's manifests whose subject is the
// digest, optionally filtered by artifactType. It reads the manifests
// distribution stored, so deletes need no bookkeeping.
func (s *Server) serveReferrers(w http.ResponseWriter, r *http.Request, internal, ref string, q url.Values) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		serveError(w, errcode.ErrorCodeUnsupported, nil)
		return
	}
	target, err := digest.Parse(ref)
	if err != nil {
		serveError(w, errcode.ErrorCodeDigestInvalid, map[string]string{"digest": ref})
		return
	}
	filter := q.Get("artifactType")
	ctx := r.Context()
	index := v1.Index{MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{}}
	index.SchemaVersion = 2

	named, err := reference.WithName(internal)
	if err != nil {
		serveError(w, errcode.ErrorCodeNameInvalid, nil)
		return
	}
	repo, err := s.reg.Repository(ctx, named)
	if err != nil {
		serveError(w, errcode.ErrorCodeNameInvalid, nil)
		return
	}
	ms, err := repo.Manifests(ctx)
	if err != nil {
		serveError(w, errcode.ErrorCodeUnknown, nil)
		return
	}
	enum, ok := ms.(distribution.ManifestEnumerator)
	if !ok {
		serveError(w, errcode.ErrorCodeUnsupported, nil)
		return
	}
	err = enum.Enumerate(ctx, func(dgst digest.Digest) error {
		m, err := ms.Get(ctx, dgst)
		if err != nil {
			return nil // unreadable or of an unknown type: not a referrer
		}
		mediaType, payload, err := m.Payload()
		if err != nil {
			return nil
		}
		var head manifestHead
		if json.Unmarshal(payload, &head) != nil || head.Subject == nil || head.Subject.Digest != target {
			return nil
		}
		at := head.ArtifactType
		if at == "" && head.Config != nil && mediaType == v1.MediaTypeImageManifest {
			at = head.Config.MediaType
		}
		if filter != "" && at != filter {
			return nil
		}
		index.Manifests = append(index.Manifests, v1.Descriptor{
			MediaType: mediaType, Digest: dgst, Size: int64(len(payload)),
			ArtifactType: at, Annotations: head.Annotations,
		})
		return nil
	})
	var notFound driver.PathNotFoundError
	if err != nil && !errors.As(err, &notFound) {
		s.log.Error("registry referrers", "err", err)
		serveError(w, errcode.ErrorCodeUnknown, nil)
		return
	}
	if filter != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	w.Header().Set("Content-Type", v1.MediaTypeImageIndex)
	_ = json.NewEncoder(w).Encode(index)
}
