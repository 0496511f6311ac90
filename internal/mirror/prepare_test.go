package mirror

import (
	"context"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferryvm/ferry/internal/image"
)

func platformImage(t *testing.T, p v1.Platform) v1.Image {
	t.Helper()
	img, _ := random.Image(1024, 1)
	cf, _ := img.ConfigFile()
	cf.OS, cf.Architecture = p.OS, p.Architecture
	img, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Each pushed image of the host's platform is handed to the preparation
// (the daemon builds its rootfs base) once its manifest is in; an image
// for another platform is not.
func TestPushPreparesImage(t *testing.T) {
	_, host, m := newMirrorServer(t)
	got := make(chan v1.Hash, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m.WithPrepare(ctx, func(_ context.Context, d v1.Hash) error { got <- d; return nil })

	other := image.HostPlatform()
	other.Architecture = map[string]string{"amd64": "arm64"}[other.Architecture]
	if other.Architecture == "" {
		other.Architecture = "amd64"
	}
	foreign := platformImage(t, other)
	if err := remote.Write(mustRef(t, host+"/foreign:1"), foreign); err != nil {
		t.Fatal(err)
	}
	native := platformImage(t, image.HostPlatform())
	if err := remote.Write(mustRef(t, host+"/native:1"), native); err != nil {
		t.Fatal(err)
	}
	want, _ := native.Digest()
	select {
	case d := <-got:
		if d != want {
			t.Fatalf("prepared %s, want the native image %s (not the %s one)", d, want, other.Architecture)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the pushed image was never prepared")
	}
	select {
	case d := <-got:
		t.Fatalf("prepared a second image %s", d)
	default:
	}
}
