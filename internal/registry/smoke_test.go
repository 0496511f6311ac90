package registry

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferryvm/ferry/internal/registry/store"
)

func TestPushPullTokenFlow(t *testing.T) {
	tr := newTestRegistry(t)
	secret := tr.org(t, "acme", store.ScopePush)
	img, err := random.Image(1024, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(tr.host + "/web:v1")
	if err != nil {
		t.Fatal(err)
	}
	opt := remote.WithAuth(&authn.Basic{Username: "acme", Password: secret})
	if err := remote.Write(ref, img, opt); err != nil {
		t.Fatalf("push: %v", err)
	}
	got, err := remote.Image(ref, opt)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	want, _ := img.Digest()
	gotD, _ := got.Digest()
	if want != gotD {
		t.Fatalf("digest %s, want %s", gotD, want)
	}
}
