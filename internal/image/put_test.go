package image

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestPutBlobAndImage: a blob put under a lease survives GC; an image put
// from such blobs is listed, resolvable by its tag and readable; releasing
// the lease of an untagged build's blobs lets GC take them.
func TestPutBlobAndImage(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	layer := bytes.Repeat([]byte("layer bytes "), 1000)
	d, n, err := s.PutBlob(ctx, "build:1", bytes.NewReader(layer))
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(layer)) || d != sha(layer) {
		t.Fatalf("put blob = %s %d", d, n)
	}
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if !s.Content().Has(d) {
		t.Fatal("GC removed a leased blob")
	}
	cfg := v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{d}}}
	cfgRaw, _ := json.Marshal(cfg)
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: sha(cfgRaw), Size: int64(len(cfgRaw))},
		Layers: []v1.Descriptor{{MediaType: types.OCIUncompressedLayer, Digest: d, Size: n}}}
	mRaw, _ := json.Marshal(m)
	sum, err := s.PutImage(ctx, mRaw, cfgRaw, []string{"built:1"})
	if err != nil {
		t.Fatal(err)
	}
	if sum.ID != sha(mRaw) || len(sum.RepoTags) != 1 || !strings.HasSuffix(sum.RepoTags[0], "/built:1") {
		t.Fatalf("summary = %+v", sum)
	}
	img, id, err := s.Image(ctx, "built:1")
	if err != nil || id != sum.ID {
		t.Fatalf("image: %v %v", id, err)
	}
	if ls, _ := img.Layers(); len(ls) != 1 {
		t.Fatal("layers")
	}
	if err := s.RemoveLease(ctx, "build:1"); err != nil {
		t.Fatal(err)
	}
	s.GC(ctx)
	if !s.Content().Has(d) {
		t.Fatal("GC removed a layer of a tagged image")
	}
	// A manifest naming a layer that is not stored is refused.
	m.Layers[0].Digest = sha([]byte("absent"))
	bad, _ := json.Marshal(m)
	if _, err := s.PutImage(ctx, bad, cfgRaw, nil); err == nil {
		t.Fatal("an image with a missing layer was recorded")
	}
}
