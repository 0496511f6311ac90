package image

import (
	"bytes"
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// MaxManifestSize bounds manifests and indexes read from registries or
// tarballs (distribution's own limit is 4 MiB).
const MaxManifestSize = 4 << 20

// ErrUnsupported is wrapped for content ferry cannot use: unknown media
// types, schema 1 manifests, artifacts that are not images.
var ErrUnsupported = fmt.Errorf("unsupported content: %w", errdefs.ErrInvalidArgument)

// Media types ferry accepts.
var (
	manifestTypes = map[types.MediaType]bool{types.DockerManifestSchema2: true, types.OCIManifestSchema1: true}
	indexTypes    = map[types.MediaType]bool{types.DockerManifestList: true, types.OCIImageIndex: true}
	configTypes   = map[types.MediaType]bool{types.DockerConfigJSON: true, types.OCIConfigJSON: true}
	layerTypes    = map[types.MediaType]bool{
		types.DockerLayer: true, types.DockerUncompressedLayer: true,
		types.OCILayer: true, types.OCIUncompressedLayer: true, types.OCILayerZStd: true,
		types.DockerForeignLayer: true, types.OCIRestrictedLayer: true, types.OCIUncompressedRestrictedLayer: true,
	}
)

// probe is the part of any manifest/index JSON that tells what it is.
type probe struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     types.MediaType `json:"mediaType"`
	Config        json.RawMessage `json:"config"`
	Manifests     json.RawMessage `json:"manifests"`
}

// Sniff returns the media type of a manifest or index, from its mediaType
// field or, when absent (allowed by OCI), from its shape.
func Sniff(raw []byte) (types.MediaType, error) {
	if len(raw) > MaxManifestSize {
		return "", fmt.Errorf("manifest is %d bytes, over the %d limit: %w", len(raw), MaxManifestSize, ErrUnsupported)
	}
	var p probe
	if err := json.Unmarshal(raw, &p); err != nil {
		return "", fmt.Errorf("manifest is not valid JSON: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	if p.SchemaVersion == 1 {
		return "", fmt.Errorf("docker schema 1 manifest (deprecated; re-push the image with a current client): %w", ErrUnsupported)
	}
	if p.SchemaVersion != 2 {
		return "", fmt.Errorf("manifest schemaVersion %d: %w", p.SchemaVersion, ErrUnsupported)
	}
	if p.MediaType != "" {
		if !manifestTypes[p.MediaType] && !indexTypes[p.MediaType] {
			return "", fmt.Errorf("manifest media type %q: %w", p.MediaType, ErrUnsupported)
		}
		return p.MediaType, nil
	}
	switch {
	case p.Config != nil && p.Manifests == nil:
		return types.OCIManifestSchema1, nil
	case p.Manifests != nil && p.Config == nil:
		return types.OCIImageIndex, nil
	}
	return "", fmt.Errorf("manifest has no mediaType and is neither an image manifest nor an index: %w", ErrUnsupported)
}

// ParseManifest parses and validates an image manifest (Docker schema 2 or
// OCI): known media types, well-formed digests, non-negative sizes.
func ParseManifest(raw []byte) (*v1.Manifest, types.MediaType, error) {
	mt, err := Sniff(raw)
	if err != nil {
		return nil, "", err
	}
	if !manifestTypes[mt] {
		return nil, "", fmt.Errorf("expected an image manifest, got %s: %w", mt, errdefs.ErrInvalidArgument)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, "", fmt.Errorf("parse manifest: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	if !configTypes[m.Config.MediaType] {
		return nil, "", fmt.Errorf("config media type %q (not a container image): %w", m.Config.MediaType, ErrUnsupported)
	}
	if err := checkDesc("config", m.Config); err != nil {
		return nil, "", err
	}
	for i, l := range m.Layers {
		if !layerTypes[l.MediaType] {
			return nil, "", fmt.Errorf("layer %d (%s) media type %q: %w", i, l.Digest, l.MediaType, ErrUnsupported)
		}
		if err := checkDesc(fmt.Sprintf("layer %d", i), l); err != nil {
			return nil, "", err
		}
	}
	return m, mt, nil
}

// ParseIndex parses and validates an index or Docker manifest list.
func ParseIndex(raw []byte) (*v1.IndexManifest, types.MediaType, error) {
	mt, err := Sniff(raw)
	if err != nil {
		return nil, "", err
	}
	if !indexTypes[mt] {
		return nil, "", fmt.Errorf("expected an index, got %s: %w", mt, errdefs.ErrInvalidArgument)
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, "", fmt.Errorf("parse index: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	for i, m := range idx.Manifests {
		if err := checkDesc(fmt.Sprintf("index entry %d", i), m); err != nil {
			return nil, "", err
		}
	}
	return idx, mt, nil
}

func checkDesc(what string, d v1.Descriptor) error {
	if d.Digest.Algorithm != "sha256" || len(d.Digest.Hex) != 64 {
		return fmt.Errorf("%s digest %q (only sha256 is supported): %w", what, d.Digest.String(), ErrUnsupported)
	}
	if d.Size < 0 {
		return fmt.Errorf("%s %s has negative size %d: %w", what, d.Digest, d.Size, errdefs.ErrInvalidArgument)
	}
	return nil
}
