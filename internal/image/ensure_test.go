package image

import (
	"context"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/testimage"
)

// TestEnsurePullsOnlyWhenMissing: an image not in the cache is pulled; a
// cached one is served without the registry; a pull that fails says so.
func TestEnsurePullsOnlyWhenMissing(t *testing.T) {
	ctx := context.Background()
	host := testimage.Registry(t)
	img := must[v1.Image](t)(testimage.Random(20, 1, 4096))
	ref := testimage.Push(t, host, "ensure/a:1", img)
	s, _ := newStore(t)
	want := must[v1.Hash](t)(img.Digest())
	_, d, err := s.Ensure(ctx, ref)
	if err != nil || d != want {
		t.Fatalf("first Ensure = %s, %v; want a pull of %s", d, err, want)
	}
	// A name only the cache knows (docker.io is unreachable from tests):
	// served from the cache, no pull.
	if err := s.Tag(ctx, ref, "ensure-local:only"); err != nil {
		t.Fatal(err)
	}
	if _, d, err := s.Ensure(ctx, "ensure-local:only"); err != nil || d != want {
		t.Fatalf("Ensure of a cached image = %s, %v", d, err)
	}
	_, _, err = s.Ensure(ctx, host+"/ensure/missing:1")
	if err == nil || !strings.Contains(err.Error(), "pull failed") {
		t.Errorf("Ensure of an image nowhere: %v", err)
	}
}
