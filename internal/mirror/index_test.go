package mirror

import (
	"context"
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// A multi-platform index pushed by tag (its images by digest, as clients
// push them) keeps its tag, is listed by tags/list, and holds its images
// through an image gc; `ferry image rm` of the tag lets gc take it all.
func TestIndexTaggedAndKept(t *testing.T) {
	st, host := newMirror(t)
	idx, err := random.Index(8<<10, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(host+"/registry.example.com/multi:v1", name.Insecure)
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatalf("push the index: %v", err)
	}
	if _, err := st.GC(context.Background()); err != nil {
		t.Fatal(err)
	}
	back, err := remote.Index(ref)
	if err != nil {
		t.Fatalf("pull the index by tag after gc: %v", err)
	}
	if got, _ := back.Digest(); true {
		if want, _ := idx.Digest(); got != want {
			t.Fatalf("pulled %s, pushed %s", got, want)
		}
	}
	im, _ := back.IndexManifest()
	for _, desc := range im.Manifests {
		img, err := back.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		ls, _ := img.Layers()
		for _, l := range ls {
			rc, err := l.Compressed()
			if err != nil {
				t.Fatalf("layer of %s after gc: %v", desc.Digest, err)
			}
			rc.Close()
		}
	}
	tags, err := remote.List(ref.Context())
	if err != nil || len(tags) != 1 || tags[0] != "v1" {
		t.Fatalf("tags/list: %v %v", tags, err)
	}
	if _, err := st.Remove(context.Background(), "registry.example.com/multi:v1", false); err != nil {
		t.Fatalf("image rm of the index tag: %v", err)
	}
	// Its images were pushed by digest, untagged (dangling): pruning
	// them and gc leave nothing of the index.
	if _, err := st.Prune(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + host + "/v2/registry.example.com/multi/manifests/v1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("index tag after image rm: %d", resp.StatusCode)
	}
	wantGone, _ := idx.Digest()
	if st.Content().Has(wantGone) {
		t.Fatal("gc kept the untagged index")
	}
}
