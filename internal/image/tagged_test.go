package image

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// A tagged artifact manifest and a tagged index over it keep what they
// reference through GC, a tag moves between an image and a manifest, and
// Remove of the tag lets GC take everything.
func TestPutManifestKeptByGC(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	blob := bytes.Repeat([]byte("artifact "), 500)
	bd, n, err := s.PutBlob(ctx, "push", bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	empty := []byte("{}")
	ed, _, _ := s.PutBlob(ctx, "push", bytes.NewReader(empty))
	art, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": types.OCIManifestSchema1, "artifactType": "application/vnd.example",
		"config": v1.Descriptor{MediaType: "application/vnd.oci.empty.v1+json", Digest: ed, Size: 2},
		"layers": []v1.Descriptor{{MediaType: "text/plain", Digest: bd, Size: n}},
	})
	idx, _ := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex,
		Manifests: []v1.Descriptor{{MediaType: types.OCIManifestSchema1, Digest: sha(art), Size: int64(len(art))}}})
	if _, _, err := s.PutBlob(ctx, "push", bytes.NewReader(art)); err != nil {
		t.Fatal(err)
	}
	if d, err := s.PutManifest(ctx, idx, []string{"example.com/things:v1"}); err != nil || d != sha(idx) {
		t.Fatalf("put manifest: %s %v", d, err)
	}
	if err := s.RemoveLease(ctx, "push"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range []v1.Hash{sha(idx), sha(art), bd, ed} {
		if !s.Content().Has(d) {
			t.Fatalf("gc took %s, which a tagged index references", d)
		}
	}
	raw, d, err := s.TaggedManifest(ctx, "example.com/things:v1")
	if err != nil || d != sha(idx) || !bytes.Equal(raw, idx) {
		t.Fatalf("tagged manifest: %s %v", d, err)
	}
	if list, _ := s.List(ctx); len(list) != 0 {
		t.Fatalf("an index is listed as an image: %+v", list)
	}
	if _, err := s.Remove(ctx, "example.com/things:v1", false); err != nil {
		t.Fatal(err)
	}
	for _, d := range []v1.Hash{sha(idx), sha(art), bd} {
		if s.Content().Has(d) {
			t.Fatalf("gc kept %s after its tag was removed", d)
		}
	}
}
