package mirror

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// req sends one request with an optional Content-Range and returns the
// response, failing on another status, or on a 404 that is not
// distribution's BLOB_UPLOAD_UNKNOWN for an upload URL.
func req(t *testing.T, method, url, contentRange string, body []byte, want int) *http.Response {
	t.Helper()
	r, _ := http.NewRequest(method, url, bytes.NewReader(body))
	if contentRange != "" {
		r.Header.Set("Content-Range", contentRange)
		r.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, url, resp.StatusCode, want, b)
	}
	if want == http.StatusNotFound && strings.Contains(url, "/uploads/") && !bytes.Contains(b, []byte("BLOB_UPLOAD_UNKNOWN")) {
		t.Fatalf("%s %s: 404 without BLOB_UPLOAD_UNKNOWN: %s", method, url, b)
	}
	return resp
}

// A chunked upload a client started before the daemon restarted carries
// on with the next daemon: it reports the bytes it holds and takes the
// rest, and the blob commits under its digest.
func TestUploadResumesAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	host, _ := serveMirror(t, openStore(t, dir, db), dir)
	blob := make([]byte, 3<<20)
	_, _ = rand.Read(blob)
	sum := sha256.Sum256(blob)
	d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	half := int64(len(blob) / 2)

	loc := req(t, http.MethodPost, "http://"+host+"/v2/app/blobs/uploads/", "", nil, http.StatusAccepted).Header.Get("Location")
	req(t, http.MethodPatch, "http://"+host+loc, "0-"+itoa(half-1), blob[:half], http.StatusAccepted)

	// The daemon restarts: a new store and mirror over the same root.
	st2 := openStore(t, dir, db)
	host2, _ := serveMirror(t, st2, dir)
	resp := req(t, http.MethodGet, "http://"+host2+loc, "", nil, http.StatusNoContent)
	if got := resp.Header.Get("Range"); got != "0-"+itoa(half-1) {
		t.Fatalf("resumed upload reports Range %q, want 0-%d", got, half-1)
	}
	req(t, http.MethodPatch, "http://"+host2+loc, itoa(half)+"-"+itoa(int64(len(blob))-1), blob[half:], http.StatusAccepted)
	req(t, http.MethodPut, "http://"+host2+loc+"?digest="+d.String(), "", nil, http.StatusCreated)
	if !st2.Content().Has(d) {
		t.Fatal("the resumed upload's blob is not in the store")
	}
	// Closed: the session is gone, and says so.
	req(t, http.MethodGet, "http://"+host2+loc, "", nil, http.StatusNotFound)
	if ents, _ := os.ReadDir(filepath.Join(dir, "mirror-uploads")); len(ents) != 0 {
		t.Fatalf("upload directory keeps %d files after the upload closed", len(ents))
	}
}

// Unknown sessions (never opened, of another repository, a path instead
// of an ID, or expired across a restart) answer 404 BLOB_UPLOAD_UNKNOWN,
// which makes clients start over.
func TestUploadUnknown(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	host, _ := serveMirror(t, openStore(t, dir, db), dir)
	loc := req(t, http.MethodPost, "http://"+host+"/v2/app/blobs/uploads/", "", nil, http.StatusAccepted).Header.Get("Location")
	id := loc[strings.LastIndex(loc, "/")+1:]
	for _, u := range []string{
		"/v2/app/blobs/uploads/0123456789abcdef0123456789abcdef",
		"/v2/other/blobs/uploads/" + id,
		"/v2/app/blobs/uploads/..%2f..%2fmeta.db",
	} {
		req(t, http.MethodGet, "http://"+host+u, "", nil, http.StatusNotFound)
	}
	// A session idle longer than the upload TTL is dropped by the next daemon.
	old := time.Now().Add(-DefaultUploadTTL - time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "mirror-uploads", id), old, old); err != nil {
		t.Fatal(err)
	}
	host2, _ := serveMirror(t, openStore(t, dir, db), dir)
	req(t, http.MethodGet, "http://"+host2+loc, "", nil, http.StatusNotFound)
	if _, err := os.Stat(filepath.Join(dir, "mirror-uploads", id)); !os.IsNotExist(err) {
		t.Fatalf("expired upload still on disk: %v", err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
