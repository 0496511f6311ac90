package image

import (
	"context"
	"errors"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/testimage"
)

func blobCount(t testing.TB, s *Store) int {
	n := 0
	if err := s.content.Walk(func(v1.Hash, int64) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTagRemovePruneLeases(t *testing.T) {
	ctx := context.Background()
	host := testimage.Registry(t)
	a := must[v1.Image](t)(testimage.Random(10, 2, 4096))
	b := must[v1.Image](t)(testimage.Extend(a, 11, 4096))
	s, _ := newStore(t)
	refA := testimage.Push(t, host, "verbs/a:1", a)
	refB := testimage.Push(t, host, "verbs/b:1", b)
	ra := must[*PullResult](t)(s.Pull(ctx, refA))
	rb := must[*PullResult](t)(s.Pull(ctx, refB))

	if err := s.Tag(ctx, refA, "alpine:mine"); err != nil {
		t.Fatal(err)
	}
	det := must[*Details](t)(s.Inspect(ctx, "docker.io/library/alpine:mine"))
	if det.ID != ra.Image.ID {
		t.Fatalf("tag points at %s", det.ID)
	}
	// by ID with two tags: refused without force
	if _, err := s.Remove(ctx, ra.Image.ID.String(), false); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("rmi by ID with 2 tags: %v", err)
	}
	// untag one name: image stays
	rep := must[*RemoveReport](t)(s.Remove(ctx, "alpine:mine", false))
	if len(rep.Deleted) != 0 || len(rep.Untagged) != 1 {
		t.Fatalf("rmi alpine:mine: %+v", rep)
	}
	// leased image refuses removal
	if err := s.AddLease(ctx, "machine-1", ra.Image.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove(ctx, refA, false); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("rmi leased: %v", err)
	}
	// prune -a keeps leased A, deletes B; B's own layer and config go, shared layers stay
	before := blobCount(t, s)
	pr := must[*PruneReport](t)(s.Prune(ctx, true))
	if len(pr.Deleted) != 1 || pr.Deleted[0] != rb.Image.ID || pr.BytesFreed == 0 {
		t.Fatalf("prune: %+v", pr)
	}
	if got := blobCount(t, s); got != before-3 {
		t.Errorf("prune left %d blobs, want %d", got, before-3)
	}
	// force-remove the leased image: record gone, blobs kept by the lease
	must[*RemoveReport](t)(s.Remove(ctx, refA, true))
	if n := len(must[[]Summary](t)(s.List(ctx))); n != 0 {
		t.Fatalf("list after rmi: %d", n)
	}
	if _, err := s.ImageByDigest(ctx, ra.Image.ID); err != nil {
		t.Fatalf("leased image gone: %v", err)
	}
	if err := s.RemoveLease(ctx, "machine-1"); err != nil {
		t.Fatal(err)
	}
	gc := must[*GCReport](t)(s.GC(ctx))
	if gc.Blobs != 4 || blobCount(t, s) != 0 {
		t.Errorf("gc removed %d, left %d", gc.Blobs, blobCount(t, s))
	}
}

func TestDanglingAfterRetag(t *testing.T) {
	ctx := context.Background()
	host := testimage.Registry(t)
	s, _ := newStore(t)
	ref := host + "/dangle:latest"
	testimage.Push(t, host, "dangle:latest", must[v1.Image](t)(testimage.Random(20, 1, 1024)))
	old := must[*PullResult](t)(s.Pull(ctx, ref))
	testimage.Push(t, host, "dangle:latest", must[v1.Image](t)(testimage.Random(21, 1, 1024)))
	must[*PullResult](t)(s.Pull(ctx, ref))
	for _, sum := range must[[]Summary](t)(s.List(ctx)) {
		if sum.ID == old.Image.ID && len(sum.RepoTags) != 0 {
			t.Fatalf("old image still tagged: %+v", sum)
		}
	}
	pr := must[*PruneReport](t)(s.Prune(ctx, false))
	if len(pr.Deleted) != 1 || pr.Deleted[0] != old.Image.ID {
		t.Fatalf("prune dangling: %+v", pr)
	}
}

func TestResolveRefs(t *testing.T) {
	for in, want := range map[string]string{
		"alpine":                         "docker.io/library/alpine:latest",
		"alpine:3.20":                    "docker.io/library/alpine:3.20",
		"me/app":                         "docker.io/me/app:latest",
		"docker.io/library/alpine":       "docker.io/library/alpine:latest",
		"index.docker.io/library/alpine": "docker.io/library/alpine:latest",
		"localhost:5000/app:1":           "localhost:5000/app:1",
		"ghcr.io/o/r@sha256:" + zero64:   "ghcr.io/o/r@sha256:" + zero64,
	} {
		got, err := CanonicalString(in)
		if err != nil || got != want {
			t.Errorf("%s → %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "UPPER", "a b", "x@sha256:12"} {
		if _, err := CanonicalString(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if FamiliarName("docker.io/library/alpine:latest") != "alpine:latest" || FamiliarName("docker.io/me/x:1") != "me/x:1" {
		t.Error("FamiliarName")
	}
}

const zero64 = "0000000000000000000000000000000000000000000000000000000000000000"
