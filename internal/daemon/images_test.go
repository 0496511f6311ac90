package daemon

import (
	"context"
	"errors"
	"testing"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/testimage"
)

func TestAuthenticatorFromCaller(t *testing.T) {
	if authenticator(nil) != nil || authenticator(&api.RegistryAuth{}) != nil {
		t.Fatal("empty credentials must fall back to the daemon's keychain")
	}
	cfg, err := authenticator(&api.RegistryAuth{Username: "u", Password: "p"}).Authorization()
	if err != nil || cfg.Username != "u" || cfg.Password != "p" {
		t.Fatalf("authorization = %+v, %v", cfg, err)
	}
}

// TestImageAPIThroughDaemon pulls through a whole in-process daemon and
// checks list, verify and remove over the typed client.
func TestImageAPIThroughDaemon(t *testing.T) {
	reg := testimage.Registry(t)
	img, err := testimage.Random(5, 2, 32<<10)
	if err != nil {
		t.Fatal(err)
	}
	ref := testimage.Push(t, reg, "d/app:1", img)
	_, c := startDaemon(t, Config{})
	ctx := context.Background()
	res, err := c.Pull(ctx, api.PullRequest{Ref: ref}, nil)
	if err != nil || res.BlobsFetched != 3 {
		t.Fatalf("pull = %+v, %v", res, err)
	}
	rep, err := c.VerifyImages(ctx)
	if err != nil || !rep.OK() || rep.Images != 1 || rep.Blobs != 4 {
		t.Fatalf("verify = %+v, %v", rep, err)
	}
	if _, err := c.Pull(ctx, api.PullRequest{Ref: ref, Platform: "not a platform//x/y/z"}, nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad platform: %v", err)
	}
	if _, err := c.RemoveImage(ctx, ref, false); err != nil {
		t.Fatal(err)
	}
	if l, err := c.Images(ctx, true); err != nil || len(l) != 0 {
		t.Fatalf("images after rmi = %+v, %v", l, err)
	}
}

// A rootfs base is a cache of its image, not a user: rmi and prune -a must
// delete an image whose base no machine uses (and the base with it).
func TestRemoveImageDropsUnusedBase(t *testing.T) {
	reg := testimage.Registry(t)
	ctx := context.Background()
	_, c := startDaemon(t, Config{})
	push := func(seed uint64, repo string) string {
		img, err := testimage.Random(seed, 1, 16<<10)
		if err != nil {
			t.Fatal(err)
		}
		ref := testimage.Push(t, reg, repo, img)
		if _, err := c.Pull(ctx, api.PullRequest{Ref: ref}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := c.EnsureRootfs(ctx, ref); err != nil {
			t.Fatalf("rootfs %s: %v", ref, err)
		}
		return ref
	}
	rmRef := push(11, "d/rm:1")
	pruneRef := push(12, "d/prune:1")

	if _, err := c.RemoveImage(ctx, rmRef, false); err != nil {
		t.Fatalf("rmi of an image with an unused base: %v", err)
	}
	if _, err := c.InspectRootfs(ctx, pruneRef); err != nil {
		t.Fatalf("the other image's base must stay: %v", err)
	}
	rep, err := c.PruneImages(ctx, true)
	if err != nil || len(rep.Deleted) != 1 || rep.BytesFreed == 0 {
		t.Fatalf("prune -a = %+v, %v", rep, err)
	}
	if l, err := c.Images(ctx, true); err != nil || len(l) != 0 {
		t.Fatalf("images left = %+v, %v", l, err)
	}
	df, err := c.SystemDF(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(df.Bases) != 0 {
		t.Fatalf("bases left after rmi and prune -a: %+v", df.Bases)
	}
}
