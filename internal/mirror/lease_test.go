package mirror

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/ferryvm/ferry/internal/image"
)

// pushBlobs uploads img's config and layers (monolithic POSTs to
// uploads, "REPO/blobs/uploads/?" with any query to keep), not its manifest.
func pushBlobs(t *testing.T, host, uploads string, img v1.Image) {
	t.Helper()
	base := "http://" + host + "/v2/" + uploads
	cfg, _ := img.RawConfigFile()
	cd, _ := img.ConfigName()
	put(t, base+"digest="+cd.String(), http.MethodPost, cfg, http.StatusCreated)
	ls, _ := img.Layers()
	for _, l := range ls {
		rc, _ := l.Compressed()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(rc)
		rc.Close()
		d, _ := l.Digest()
		put(t, base+"digest="+d.String(), http.MethodPost, buf.Bytes(), http.StatusCreated)
	}
}

// putManifest PUTs img's manifest as repo:ref and returns the status.
func putManifest(t *testing.T, host, repo, ref string, img v1.Image) int {
	t.Helper()
	raw, _ := img.RawManifest()
	mt, _ := img.MediaType()
	req, _ := http.NewRequest(http.MethodPut, "http://"+host+"/v2/"+repo+"/manifests/"+ref, bytes.NewReader(raw))
	req.Header.Set("Content-Type", string(mt))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func uploadLeases(t *testing.T, st *image.Store) int {
	t.Helper()
	ls, err := st.Leases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for id, ds := range ls {
		if strings.HasPrefix(id, uploadLease) {
			n += len(ds)
		}
	}
	return n
}

// Blobs pushed ahead of their manifest survive an image gc in between;
// once the manifest is in, the image holds them and the lease is gone.
func TestPushedBlobsSurviveGC(t *testing.T) {
	st, host := newMirror(t)
	img, _ := random.Image(64<<10, 2)
	pushBlobs(t, host, "app/blobs/uploads/?", img)
	if n := uploadLeases(t, st); n != 3 {
		t.Fatalf("%d blobs leased after upload, want 3", n)
	}
	if _, err := st.GC(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code := putManifest(t, host, "app", "v1", img); code != http.StatusCreated {
		t.Fatalf("manifest after gc: %d, want 201 (gc took the pushed blobs)", code)
	}
	if n := uploadLeases(t, st); n != 0 {
		t.Fatalf("%d blobs still leased once the manifest holds them", n)
	}
	if _, err := st.GC(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Image(context.Background(), "app:v1"); err != nil {
		t.Fatal(err)
	}
}

// A daemon restart between the blobs and the manifest (image.Open
// takes unreferenced blobs out of the cache) keeps leased blobs; an
// expired lease lets gc take an abandoned push's blobs.
func TestPushedBlobsSurviveRestartThenExpire(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	host, m := serveMirror(t, openStore(t, dir, db), dir)
	img, _ := random.Image(4096, 1)
	pushBlobs(t, host, "app/blobs/uploads/?", img)
	st2 := openStore(t, dir, db) // the restarted daemon's
	ls, _ := img.Layers()
	ld, _ := ls[0].Digest()
	if !st2.Content().Has(ld) {
		t.Fatal("a restart took a blob pushed ahead of its manifest")
	}
	// A mirror whose TTL has passed for every window drops the leases on
	// its next upload, and gc then takes the abandoned blobs.
	m2, err := New(st2, m.uploads, nil)
	if err != nil {
		t.Fatal(err)
	}
	m2.WithUploadTTL(-2 * leaseWindow)
	other, _ := random.Image(1024, 1)
	cd, _ := other.ConfigName()
	cfg, _ := other.RawConfigFile()
	if err := m2.commitBlob(context.Background(), cd, int64(len(cfg)), bytes.NewReader(cfg)); err != nil {
		t.Fatal(err)
	}
	if _, err := st2.GC(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st2.Content().Has(ld) {
		t.Fatal("an expired upload lease still holds its blob")
	}
}
