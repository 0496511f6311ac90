package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotations that name an image inside an OCI layout.
const (
	AnnotationRefName        = "org.opencontainers.image.ref.name"
	AnnotationContainerdName = "io.containerd.image.name"
)

// dockerManifest is one entry of docker save's manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

func (l *loader) dockerManifests() ([]dockerManifest, error) {
	if !l.arc.has("manifest.json") {
		return nil, nil
	}
	b, err := l.arc.read("manifest.json", MaxManifestSize)
	if err != nil {
		return nil, err
	}
	var ms []dockerManifest
	if err := json.Unmarshal(b, &ms); err != nil {
		return nil, fmt.Errorf("manifest.json: %w: %w", err, errMalformed)
	}
	return ms, nil
}

// planOCI reads index.json (and manifest.json's RepoTags when present).
func (l *loader) planOCI() ([]pending, error) {
	if b, err := l.arc.read("oci-layout", 4096); err == nil {
		var lay struct {
			Version string `json:"imageLayoutVersion"`
		}
		if json.Unmarshal(b, &lay) != nil || lay.Version != "1.0.0" {
			return nil, fmt.Errorf("oci-layout: unsupported layout version in %q: %w", b, errMalformed)
		}
	}
	raw, err := l.arc.read("index.json", MaxManifestSize)
	if err != nil {
		return nil, err
	}
	idx, _, err := ParseIndex(raw)
	if err != nil {
		return nil, fmt.Errorf("index.json: %w: %w", err, errMalformed)
	}
	dms, err := l.dockerManifests()
	if err != nil {
		return nil, err
	}
	tagsByConfig := map[string][]string{}
	for _, dm := range dms {
		tagsByConfig[cleanName(dm.Config)] = append(tagsByConfig[cleanName(dm.Config)], dm.RepoTags...)
	}
	var out []pending
	for i, desc := range idx.Manifests {
		mdesc := desc
		if indexTypes[desc.MediaType] {
			child, err := l.readBlob(desc)
			if err != nil {
				return nil, fmt.Errorf("index.json entry %d: %w", i, err)
			}
			cidx, _, err := ParseIndex(child)
			if err != nil {
				return nil, fmt.Errorf("index %s: %w: %w", desc.Digest, err, errMalformed)
			}
			if mdesc, err = selectPlatform(desc.Digest.String(), cidx, l.s.opts.platform); err != nil {
				return nil, err
			}
		} else if !manifestTypes[desc.MediaType] {
			return nil, fmt.Errorf("index.json entry %d (%s) media type %q: %w", i, desc.Digest, desc.MediaType, ErrUnsupported)
		}
		p, err := l.pendingFromDesc(mdesc)
		if err != nil {
			return nil, err
		}
		p.names = namesFromAnnotations(desc.Annotations)
		for _, t := range tagsByConfig["blobs/sha256/"+p.m.Config.Digest.Hex] {
			if c, err := CanonicalString(t); err == nil {
				p.names = append(p.names, c)
			}
		}
		p.names = dedupe(p.names)
		out = append(out, p)
	}
	return out, nil
}

// namesFromAnnotations returns the canonical names an index entry carries.
// A bare ref.name ("latest") names no repository and is ignored.
func namesFromAnnotations(a map[string]string) []string {
	var out []string
	for _, k := range []string{AnnotationContainerdName, AnnotationRefName} {
		v := a[k]
		if v == "" || (k == AnnotationRefName && !strings.ContainsAny(v, "/:@")) {
			continue
		}
		if c, err := CanonicalString(v); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// readBlob reads a manifest/index blob from the archive, checking size and digest.
func (l *loader) readBlob(desc v1.Descriptor) ([]byte, error) {
	if desc.Size > MaxManifestSize {
		return nil, fmt.Errorf("blob %s: %d bytes: %w", desc.Digest, desc.Size, ErrUnsupported)
	}
	b, err := l.arc.read("blobs/"+desc.Digest.Algorithm+"/"+desc.Digest.Hex, MaxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("the archive lacks blob %s: %w", desc.Digest, errMalformed)
	}
	if int64(len(b)) != desc.Size || sha(b) != desc.Digest {
		return nil, fmt.Errorf("blob %s does not match its descriptor (corrupt archive): %w", desc.Digest, errMalformed)
	}
	return b, nil
}

func (l *loader) pendingFromDesc(desc v1.Descriptor) (pending, error) {
	raw, err := l.readBlob(desc)
	if err != nil {
		return pending{}, err
	}
	m, mt, err := ParseManifest(raw)
	if err != nil {
		return pending{}, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	return pending{raw: raw, digest: desc.Digest, m: m, mt: mt}, nil
}

// planDocker reads a legacy docker save tarball: manifest.json, <id>.json
// configs and <id>/layer.tar layers (gzip/zstd/plain). It builds an OCI
// manifest whose layers are the archive's files as they are.
func (l *loader) planDocker() ([]pending, error) {
	dms, err := l.dockerManifests()
	if err != nil {
		return nil, err
	}
	var out []pending
	for i, dm := range dms {
		cfg, err := l.arc.read(dm.Config, MaxManifestSize*4)
		if err != nil {
			return nil, fmt.Errorf("manifest.json entry %d: config: %w", i, err)
		}
		p := pending{paths: map[v1.Hash]string{}}
		cd := sha(cfg)
		p.paths[cd] = dm.Config
		m := &v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
			Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: cd, Size: int64(len(cfg))}}
		for _, lp := range dm.Layers {
			desc, err := l.layerDesc(lp)
			if err != nil {
				return nil, fmt.Errorf("manifest.json entry %d: %w", i, err)
			}
			p.paths[desc.Digest] = lp
			m.Layers = append(m.Layers, desc)
		}
		raw, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		p.raw, p.digest, p.m, p.mt = raw, sha(raw), m, types.OCIManifestSchema1
		for _, t := range dm.RepoTags {
			c, err := CanonicalString(t)
			if err != nil {
				return nil, fmt.Errorf("manifest.json entry %d: tag %q: %w", i, t, errMalformed)
			}
			p.names = append(p.names, c)
		}
		out = append(out, p)
	}
	return out, nil
}

// layerDesc hashes one layer file and sniffs its compression.
func (l *loader) layerDesc(name string) (v1.Descriptor, error) {
	r, size, err := l.arc.open(name)
	if err != nil {
		return v1.Descriptor{}, err
	}
	var magic [4]byte
	n, _ := io.ReadFull(r, magic[:])
	mt := types.OCIUncompressedLayer
	switch {
	case n >= 2 && bytes.Equal(magic[:2], []byte{0x1f, 0x8b}):
		mt = types.OCILayer
	case n == 4 && bytes.Equal(magic[:], []byte{0x28, 0xb5, 0x2f, 0xfd}):
		mt = types.OCILayerZStd
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, size)); err != nil {
		return v1.Descriptor{}, err
	}
	d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	return v1.Descriptor{MediaType: mt, Digest: d, Size: size}, nil
}

func sha(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}
