package image

import (
	"context"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/testimage"
)

func TestInsecureRegistries(t *testing.T) {
	s := &Store{opts: defaultOptions()}
	WithInsecureRegistries("reg.lan:5000", "plain.example")(&s.opts)
	for host, want := range map[string]bool{
		"localhost": true, "localhost:5000": true, "127.0.0.1:5000": true, "[::1]:5000": true,
		"127.8.9.10": true, "reg.lan:5000": true, "plain.example:443": true, "plain.example": true,
		"reg.lan": false, "ghcr.io": false, "index.docker.io": false, "10.0.0.1:5000": false,
	} {
		if got := s.insecure(host); got != want {
			t.Errorf("insecure(%s) = %v, want %v", host, got, want)
		}
	}
	r, err := s.parseForRegistry("reg.lan:5000/app")
	if err != nil || r.Context().Scheme() != "http" {
		t.Errorf("reg.lan:5000 scheme %s, %v", r.Context().Scheme(), err)
	}
	r, _ = s.parseForRegistry("ghcr.io/app")
	if r.Context().Scheme() != "https" {
		t.Errorf("ghcr.io scheme %s", r.Context().Scheme())
	}
}

// Pulling by the index digest records repo@<index digest>, and that
// reference resolves locally afterwards.
func TestPullByIndexDigest(t *testing.T) {
	ctx := context.Background()
	idx := must[v1.ImageIndex](t)(testimage.Index("linux/amd64", "linux/arm64/v8"))
	host := testimage.Registry(t)
	testimage.PushIndex(t, host, "bydigest:1", idx)
	id := must[v1.Hash](t)(idx.Digest())
	ref := host + "/bydigest@" + id.String()
	s, _ := newStore(t)
	res := must[*PullResult](t)(s.Pull(ctx, ref))
	if len(res.Image.RepoDigests) != 1 || res.Image.RepoDigests[0] != ref || len(res.Image.RepoTags) != 0 {
		t.Fatalf("names %+v / %+v", res.Image.RepoTags, res.Image.RepoDigests)
	}
	det := must[*Details](t)(s.Inspect(ctx, ref))
	if det.ID != res.Image.ID {
		t.Fatal("digest reference does not resolve")
	}
	// Short ID prefix resolves too.
	if det := must[*Details](t)(s.Inspect(ctx, res.Image.ID.Hex[:12])); det.ID != res.Image.ID {
		t.Fatal("ID prefix does not resolve")
	}
}
