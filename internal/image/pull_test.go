package image

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/testimage"
)

func TestPullInspectList(t *testing.T) {
	ctx := context.Background()
	img := must[v1.Image](t)(testimage.Layered())
	host := testimage.Registry(t)
	ref := testimage.Push(t, host, "test/layered:v1", img)
	s, _ := newStore(t)

	var mu sync.Mutex
	states := map[v1.Hash]State{}
	res, err := s.Pull(ctx, ref, PullProgress(func(p Progress) {
		mu.Lock()
		states[p.Digest] = p.State
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := must[v1.Hash](t)(img.Digest())
	if res.Image.ID != want {
		t.Fatalf("pulled digest %s, want %s", res.Image.ID, want)
	}
	if res.BlobsFetched != 4 || res.BlobsExisting != 0 {
		t.Errorf("fetched %d existing %d, want 4/0", res.BlobsFetched, res.BlobsExisting)
	}
	for d, st := range states {
		if st != StateDone {
			t.Errorf("blob %s ended in state %s", d, st)
		}
	}
	det, err := s.Inspect(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	cf := must[*v1.ConfigFile](t)(img.ConfigFile())
	if len(det.Layers) != 3 {
		t.Fatalf("layers %d", len(det.Layers))
	}
	for i, l := range det.Layers {
		if l.DiffID != cf.RootFS.DiffIDs[i] {
			t.Errorf("layer %d diff id %s want %s", i, l.DiffID, cf.RootFS.DiffIDs[i])
		}
	}
	if det.Platform.OS != "linux" || det.Platform.Architecture != "amd64" {
		t.Errorf("platform %+v", det.Platform)
	}
	list := must[[]Summary](t)(s.List(ctx))
	if len(list) != 1 || len(list[0].RepoTags) != 1 || list[0].RepoTags[0] != host+"/test/layered:v1" {
		t.Fatalf("list %+v", list)
	}
	// The stored image round-trips as a v1.Image with the same digests.
	got, _, err := s.Image(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if d := must[v1.Hash](t)(got.Digest()); d != want {
		t.Errorf("Image digest %s want %s", d, want)
	}
	layers := must[[]v1.Layer](t)(got.Layers())
	for i, l := range layers {
		if d := must[v1.Hash](t)(l.DiffID()); d != cf.RootFS.DiffIDs[i] {
			t.Errorf("layer %d: %s", i, d)
		}
	}
	if bad := must[[]v1.Hash](t)(s.Verify(ctx)); len(bad) != 0 {
		t.Errorf("verify: %v", bad)
	}
	// Second pull: everything exists, nothing fetched.
	res2 := must[*PullResult](t)(s.Pull(ctx, ref))
	if res2.BytesFetched != 0 || res2.BlobsExisting != 4 {
		t.Errorf("re-pull fetched %d bytes, %d existing", res2.BytesFetched, res2.BlobsExisting)
	}
}

func TestPullDedupe(t *testing.T) {
	ctx := context.Background()
	base := must[v1.Image](t)(testimage.Random(1, 3, 64<<10))
	ext := must[v1.Image](t)(testimage.Extend(base, 99, 32<<10))
	host := testimage.Registry(t)
	s, _ := newStore(t)
	must[*PullResult](t)(s.Pull(ctx, testimage.Push(t, host, "dd/base:1", base)))
	res := must[*PullResult](t)(s.Pull(ctx, testimage.Push(t, host, "dd/ext:1", ext)))
	layers := must[[]v1.Layer](t)(ext.Layers())
	newSize := must[int64](t)(layers[3].Size())
	cfgSize := int64(len(must[[]byte](t)(ext.RawConfigFile())))
	if res.BytesFetched != newSize+cfgSize {
		t.Errorf("second pull fetched %d bytes, want %d (new layer %d + config %d)", res.BytesFetched, newSize+cfgSize, newSize, cfgSize)
	}
	if res.BlobsExisting != 3 || res.BlobsFetched != 2 {
		t.Errorf("existing %d fetched %d", res.BlobsExisting, res.BlobsFetched)
	}
}

func TestPullPlatform(t *testing.T) {
	ctx := context.Background()
	idx := must[v1.ImageIndex](t)(testimage.Index("linux/amd64", "linux/arm64/v8", "linux/arm/v7"))
	host := testimage.Registry(t)
	ref := testimage.PushIndex(t, host, "multi:1", idx)
	s, _ := newStore(t)
	im := must[*v1.IndexManifest](t)(idx.IndexManifest())
	for _, tc := range []struct {
		platform string
		want     int
	}{{"linux/amd64", 0}, {"linux/arm64", 1}, {"linux/arm64/v8", 1}, {"linux/arm/v7", 2}} {
		p := must[v1.Platform](t)(ParsePlatform(tc.platform))
		res, err := s.Pull(ctx, ref, PullPlatform(p))
		if err != nil {
			t.Fatalf("%s: %v", tc.platform, err)
		}
		if res.Image.ID != im.Manifests[tc.want].Digest {
			t.Errorf("%s: got %s want %s", tc.platform, res.Image.ID, im.Manifests[tc.want].Digest)
		}
	}
	_, err := s.Pull(ctx, ref, PullPlatform(v1.Platform{OS: "linux", Architecture: "s390x"}))
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "linux/amd64, linux/arm/v7, linux/arm64/v8") {
		t.Fatalf("unsupported platform error: %v", err)
	}
}

// Docker schema 2 manifests and manifest lists pull like OCI ones.
func TestPullDockerSchema2(t *testing.T) {
	ctx := context.Background()
	base := must[v1.Image](t)(testimage.Random(150, 2, 4096))
	img := mutate.ConfigMediaType(mutate.MediaType(base, types.DockerManifestSchema2), types.DockerConfigJSON)
	host := testimage.Registry(t)
	ref := testimage.Push(t, host, "docker/s2:1", img)
	s, _ := newStore(t)
	res := must[*PullResult](t)(s.Pull(ctx, ref))
	if res.Image.MediaType != types.DockerManifestSchema2 || res.Image.ID != must[v1.Hash](t)(img.Digest()) {
		t.Fatalf("pulled %s %s", res.Image.MediaType, res.Image.ID)
	}
	list := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img,
		Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}}), types.DockerManifestList)
	lref := testimage.PushIndex(t, host, "docker/list:1", list)
	res = must[*PullResult](t)(s.Pull(ctx, lref))
	if res.Image.ID != must[v1.Hash](t)(img.Digest()) || res.BlobsExisting != 3 {
		t.Fatalf("list pull %+v", res)
	}
}

// Concurrent pulls of images sharing layers fetch each blob once.
func TestConcurrentPulls(t *testing.T) {
	ctx := context.Background()
	base := must[v1.Image](t)(testimage.Random(180, 3, 128<<10))
	a := must[v1.Image](t)(testimage.Extend(base, 181, 1024))
	b := must[v1.Image](t)(testimage.Extend(base, 182, 1024))
	host := testimage.Registry(t)
	refs := []string{testimage.Push(t, host, "cc/a:1", a), testimage.Push(t, host, "cc/b:1", b), testimage.Push(t, host, "cc/a:1", a)}
	s, _ := newStore(t)
	var wg sync.WaitGroup
	errs := make([]error, len(refs))
	for i, ref := range refs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Pull(ctx, ref)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var want int64
	seen := map[v1.Hash]bool{}
	for _, img := range []v1.Image{a, b} {
		cfg := must[[]byte](t)(img.RawConfigFile())
		want += int64(len(cfg))
		for _, l := range must[[]v1.Layer](t)(img.Layers()) {
			d := must[v1.Hash](t)(l.Digest())
			if !seen[d] {
				seen[d] = true
				want += must[int64](t)(l.Size())
			}
		}
	}
	if got := s.BytesFetched(); got != want {
		t.Errorf("fetched %d bytes, want %d (each blob once)", got, want)
	}
	if n := len(must[[]Summary](t)(s.List(ctx))); n != 2 {
		t.Errorf("%d images", n)
	}
}
