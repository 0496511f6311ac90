package registry

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferryvm/ferry/internal/registry/gc"
	"github.com/ferryvm/ferry/internal/registry/store"
)

// ageAll makes every blob file so far look written long ago.
func (tr *testRegistry) ageAll(t *testing.T, by time.Duration) {
	t.Helper()
	old := time.Now().Add(-by)
	err := filepath.Walk(filepath.Join(tr.root, "storage/docker/registry/v2/blobs"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Name() == "data" {
			err = os.Chtimes(p, old, old)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestGCFreesUnreferencedKeepsInFlight(t *testing.T) {
	tr := newTestRegistry(t)
	ctx := context.Background()
	auth := bearer(tr.org(t, "acme", store.ScopePush))
	keepM, keepL := tr.pushImage(t, auth, "web", "v1", "kept")
	goneM, goneL := tr.pushImage(t, auth, "old", "v1", "deleted later")
	if r := tr.do(t, call{method: "DELETE", path: "/v2/old/manifests/" + goneM.String(), auth: auth}); r.status != http.StatusAccepted {
		t.Fatalf("delete manifest: %d %s", r.status, r.body)
	}
	orphan := tr.pushBlob(t, auth, "web", []byte("uploaded, never referenced"))
	checked := tr.pushBlob(t, auth, "web", []byte("old blob a client just found by HEAD"))
	tr.ageAll(t, 3*time.Hour)
	fresh := tr.pushBlob(t, auth, "web", []byte("a push in flight: blob uploaded, manifest not yet"))
	tr.touches.flush()
	// Everything so far was touched (uploaded) just now; pretend that was
	// long ago by forgetting the activity, then touch `checked` anew.
	if err := tr.store.ForgetBlobActivity(ctx, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if r := tr.do(t, call{method: "HEAD", path: "/v2/app/blobs/" + checked.String(), auth: auth}); r.status != http.StatusNotFound {
		t.Fatalf("HEAD in another repo: %d", r.status)
	}
	tr.touches.flush()

	dry, err := GC(ctx, tr.cfg, tr.store, gc.Options{Grace: time.Hour, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := GC(ctx, tr.cfg, tr.store, gc.Options{Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(rep.Deleted)
	want := []string{goneM.String(), goneL.String(), orphan.String()}
	// The deleted image's config blob goes too.
	if rep.BlobsDeleted != 4 || !containsAll(rep.Deleted, want) || rep.BytesFreed <= 0 {
		t.Fatalf("gc report %+v, want 4 blobs deleted including %v", rep, want)
	}
	if dry.BlobsDeleted != rep.BlobsDeleted || dry.BytesFreed != rep.BytesFreed {
		t.Fatalf("dry run %+v differs from run %+v", dry, rep)
	}
	if rep.BlobsKeptRecent != 2 { // `checked` (HEAD) and `fresh` (file age)
		t.Fatalf("kept recent %d, want 2: %+v", rep.BlobsKeptRecent, rep)
	}
	_ = keepM
	for d, want := range map[digest.Digest]int{keepL: 200, checked: 200, fresh: 200, orphan: 404} {
		if r := tr.do(t, call{method: "GET", path: "/v2/web/blobs/" + d.String(), auth: auth}); r.status != want {
			t.Fatalf("GET %s after gc: %d, want %d", d, r.status, want)
		}
	}
	if r := tr.do(t, call{method: "GET", path: "/v2/_catalog", auth: auth}); r.body != "{\"repositories\":[\"web\"]}\n" {
		t.Fatalf("catalog after gc (old had its only manifest deleted): %q", r.body)
	}
	if r := tr.do(t, call{method: "GET", path: "/v2/web/manifests/v1", auth: auth, accept: "application/vnd.oci.image.manifest.v1+json"}); r.status != 200 {
		t.Fatalf("kept image: %d %s", r.status, r.body)
	}
}

func TestGCRemovesDeletedOrgs(t *testing.T) {
	tr := newTestRegistry(t)
	ctx := context.Background()
	auth := bearer(tr.org(t, "gone", store.ScopePush))
	m, l := tr.pushImage(t, auth, "web", "v1", "org to delete")
	if err := tr.store.DeleteOrg(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	_, _ = m, l
	tr.ageAll(t, 3*time.Hour)
	tr.touches.flush()
	_ = tr.store.ForgetBlobActivity(ctx, time.Now().Add(time.Minute))
	rep, err := GC(ctx, tr.cfg, tr.store, gc.Options{Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.RepositoriesRemoved) != 1 || rep.BlobsDeleted != 3 {
		t.Fatalf("gc after org delete: %+v", rep)
	}
	// The org's token died with it (once the token cache forgets it).
	time.Sleep(tokenCacheTTL + 100*time.Millisecond)
	if r := tr.do(t, call{method: "GET", path: "/v2/web/tags/list", auth: auth}); r.status != http.StatusUnauthorized {
		t.Fatalf("deleted org's token: %d", r.status)
	}
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}
