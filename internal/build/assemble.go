package build

import (
	"context"
	"encoding/json"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ociLayerType maps Docker layer media types to their OCI names (same
// bytes), so the manifest is all OCI.
var ociLayerType = map[types.MediaType]types.MediaType{
	types.DockerLayer:             types.OCILayer,
	types.DockerUncompressedLayer: types.OCIUncompressedLayer,
	types.DockerForeignLayer:      types.OCIRestrictedLayer,
}

// configFile is the stage's final image config: config, history (one
// entry per instruction), diff IDs of the root image's and the built
// layers, creation time, --label values.
func (bd *build) configFile(st *stageState) *v1.ConfigFile {
	cfg := st.cfg.DeepCopy()
	if len(bd.req.Labels) > 0 && cfg.Config.Labels == nil {
		cfg.Config.Labels = map[string]string{}
	}
	for k, v := range bd.req.Labels {
		cfg.Config.Labels[k] = v
	}
	cfg.Created = v1.Time{Time: bd.created()}
	cfg.History = append([]v1.History(nil), st.history...)
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = nil
	if st.root != nil {
		if rc, err := st.root.ConfigFile(); err == nil {
			cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, rc.RootFS.DiffIDs...)
		}
	}
	for _, l := range st.layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.DiffID)
	}
	if cfg.OS == "" {
		cfg.OS = platformOS(bd.req.Platform)
	}
	if cfg.Architecture == "" {
		cfg.Architecture = platformArch(bd.req.Platform)
	}
	return cfg
}

// assemble returns the image's manifest and config.
func (bd *build) assemble(st *stageState) ([]byte, []byte, error) {
	config, err := json.Marshal(bd.configFile(st))
	if err != nil {
		return nil, nil, err
	}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: sha(config), Size: int64(len(config))}}
	if st.rootManifest != nil {
		for _, l := range st.rootManifest.Layers {
			d := v1.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size}
			if mt, ok := ociLayerType[l.MediaType]; ok {
				d.MediaType = mt
			}
			m.Layers = append(m.Layers, d)
		}
	}
	for _, l := range st.layers {
		m.Layers = append(m.Layers, l.Descriptor())
	}
	manifest, err := json.Marshal(m)
	return manifest, config, err
}

// scratchImage records the empty image a FROM scratch stage's builder VM
// boots from (its base is an empty file system), held by the build.
func (bd *build) scratchImage(ctx context.Context) (v1.Hash, error) {
	cfg := v1.ConfigFile{OS: platformOS(bd.req.Platform), Architecture: platformArch(bd.req.Platform), RootFS: v1.RootFS{Type: "layers"}}
	config, err := json.Marshal(cfg)
	if err != nil {
		return v1.Hash{}, err
	}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Layers: []v1.Descriptor{},
		Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: sha(config), Size: int64(len(config))}}
	manifest, err := json.Marshal(m)
	if err != nil {
		return v1.Hash{}, err
	}
	sum, err := bd.b.c.Images.PutImage(ctx, manifest, config, nil)
	if err != nil {
		return v1.Hash{}, err
	}
	return sum.ID, bd.b.c.Images.AddLease(ctx, bd.lease, sum.ID)
}
