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

// ageAll makes every blob file and repository link so far look written
// long ago.
func (tr *testRegistry) ageAll(t *testing.T, by time.Duration) {
	t.Helper()
	old := time.Now().Add(-by)
	err := filepath.Walk(filepath.Join(tr.root, "storage/docker/registry/v2"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && (fi.Name() == "data" || fi.Name() == "link") {
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
	if r := tr.do(t, call{method: "HEAD", path: "/v2/app/blobs/" + orphan.String(), auth: auth}); r.status != http.StatusNotFound {
		t.Fatalf("HEAD in another repo: %d", r.status)
	}
	if r := tr.do(t, call{method: "HEAD", path: "/v2/web/blobs/" + checked.String(), auth: auth}); r.status != http.StatusOK {
		t.Fatalf("HEAD: %d", r.status)
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

// TestGCJudgesEachOrgAlone: gc's decisions about an org's blobs depend on
// that org alone. Another org's HEAD or mount of a digest (which answers
// 404/202) does not keep it; another org referencing the same bytes does
// not keep the first org's orphan link alive, so what the first org sees
// after gc is the same whether or not anyone else holds the bytes.
func TestGCJudgesEachOrgAlone(t *testing.T) {
	tr := newTestRegistry(t)
	ctx := context.Background()
	a := bearer(tr.org(t, "orga", store.ScopePush))
	b := bearer(tr.org(t, "orgb", store.ScopePush))
	c := bearer(tr.org(t, "orgc", store.ScopePush))
	shared := tr.pushBlob(t, a, "web", []byte("layer:bytes b also has")) // an orphan in a
	lonely := tr.pushBlob(t, a, "web", []byte("only a has these bytes")) // an orphan in a
	// a also uploads the shared bytes by their sha512: a second link.
	s512 := digest.SHA512.FromString("layer:bytes b also has")
	if r := tr.do(t, call{method: "POST", path: "/v2/web/blobs/uploads/?digest=" + s512.String(), auth: a, body: []byte("layer:bytes b also has"), ctype: "application/octet-stream"}); r.status != http.StatusCreated {
		t.Fatalf("sha512 push: %d %s", r.status, r.body)
	}
	s512Link := filepath.Join(tr.root, "storage/docker/registry/v2/repositories", NamespaceFor(mustOrg(t, tr, "orga").ID).Prefix()+"web", "_layers/sha512", s512.Encoded())
	if _, err := os.Stat(s512Link); err != nil {
		t.Fatalf("test setup: no sha512 link at %s", s512Link)
	}
	_, bl := tr.pushImage(t, b, "app", "v1", "bytes b also has") // b references the same bytes
	if bl != shared {
		t.Fatalf("test setup: %s != %s", bl, shared)
	}
	tr.ageAll(t, 3*time.Hour)
	tr.touches.flush()
	if err := tr.store.ForgetBlobActivity(ctx, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// Other orgs probe a's orphans: HEAD, GET, mounts named and anonymous.
	for _, d := range []digest.Digest{shared, lonely} {
		for _, r := range []call{
			{method: "HEAD", path: "/v2/web/blobs/" + d.String(), auth: c},
			{method: "GET", path: "/v2/web/blobs/" + d.String(), auth: c},
			{method: "POST", path: "/v2/web/blobs/uploads/?mount=" + d.String(), auth: c},
			{method: "POST", path: "/v2/web/blobs/uploads/?mount=" + d.String() + "&from=web", auth: c},
		} {
			if got := tr.do(t, r); got.status == http.StatusOK || got.status == http.StatusCreated {
				t.Fatalf("org c %s %s: %d", r.method, r.path, got.status)
			}
		}
	}
	// b, which holds shared, uses it: that keeps b's, not a's.
	if r := tr.do(t, call{method: "HEAD", path: "/v2/app/blobs/" + shared.String(), auth: b}); r.status != http.StatusOK {
		t.Fatalf("b HEAD: %d", r.status)
	}
	tr.touches.flush()
	// Records are to the second, and gc keeps those of the second it
	// starts in (they may be of a push in flight).
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	rep, err := GC(ctx, tr.cfg, tr.store, gc.Options{Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if rep.LinksRemoved != 2 || !slices.Contains(rep.Deleted, lonely.String()) || slices.Contains(rep.Deleted, shared.String()) {
		t.Fatalf("gc report %+v: want a's two orphan links removed, lonely deleted, shared kept for b", rep)
	}
	if _, err := os.Stat(s512Link); err == nil {
		t.Fatal("a's sha512 link to the shared bytes outlived gc")
	}
	for d, want := range map[digest.Digest]int{shared: 404, lonely: 404, s512: 404} {
		if r := tr.do(t, call{method: "HEAD", path: "/v2/web/blobs/" + d.String(), auth: a}); r.status != want {
			t.Fatalf("a HEAD %s after gc: %d, want %d (the same for both)", d, r.status, want)
		}
	}
	if r := tr.do(t, call{method: "GET", path: "/v2/app/blobs/" + shared.String(), auth: b}); r.status != http.StatusOK {
		t.Fatalf("b lost its layer: %d", r.status)
	}
	// The recount charges a nothing and b its image.
	ua, _ := tr.store.Usage(ctx, mustOrg(t, tr, "orga").ID, time.Now().Add(-time.Hour))
	ub, _ := tr.store.Usage(ctx, mustOrg(t, tr, "orgb").ID, time.Now().Add(-time.Hour))
	if ua != 0 || ub <= int64(len("layer:bytes b also has")) {
		t.Fatalf("usage after gc: a %d (want 0), b %d", ua, ub)
	}
}
