package mirror

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/image"
	"github.com/ferryvm/ferry/internal/paths"
)

func newMirror(t *testing.T) (*image.Store, string) {
	t.Helper()
	st, host, _ := newMirrorServer(t)
	return st, host
}

func newMirrorServer(t *testing.T) (*image.Store, string, *Server) {
	t.Helper()
	dir := t.TempDir()
	st := openStore(t, dir, openDB(t, dir))
	host, m := serveMirror(t, st, dir)
	return st, host, m
}

func openDB(t *testing.T, dir string) *bbolt.DB {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(dir, "meta.db"), 0o600, &bbolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openStore opens (or, as a restarted daemon does, reopens) the image
// store under dir.
func openStore(t *testing.T, dir string, db *bbolt.DB) *image.Store {
	t.Helper()
	st, err := image.Open(context.Background(), paths.Root(dir), db, image.WithoutFsync())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// serveMirror serves a mirror over st with its uploads under dir.
func serveMirror(t *testing.T, st *image.Store, dir string) (string, *Server) {
	t.Helper()
	m, err := New(st, filepath.Join(dir, "mirror-uploads"), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), m
}

func listed(t *testing.T, st *image.Store, tag string) v1.Hash {
	t.Helper()
	list, err := st.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range list {
		for _, tg := range im.RepoTags {
			if tg == tag {
				return im.ID
			}
		}
	}
	t.Fatalf("ferry images does not list %s: %+v", tag, list)
	return v1.Hash{}
}

// A push with go-containerregistry (crane's library) lands in the image
// store under the pushed name, and pulls back byte for byte.
func TestPushLandsInStore(t *testing.T) {
	st, host := newMirror(t)
	img, err := random.Image(3<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(host+"/registry.example.com/app:v1", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push to the mirror: %v", err)
	}
	want, _ := img.Digest()
	if got := listed(t, st, "registry.example.com/app:v1"); got != want {
		t.Fatalf("listed %s, pushed %s", got, want)
	}
	// The store itself opens it (what ferry run uses), with no pull.
	if _, d, err := st.Image(context.Background(), "registry.example.com/app:v1"); err != nil || d != want {
		t.Fatalf("store image: %v %s", err, d)
	}
	back, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := back.Digest(); d != want {
		t.Fatalf("pulled %s, pushed %s", d, want)
	}
	ls, _ := back.Layers()
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		_, _ = b.ReadFrom(rc)
		rc.Close()
		if sz, _ := l.Size(); int64(b.Len()) != sz {
			t.Fatalf("layer read %d bytes, want %d", b.Len(), sz)
		}
	}
}

// The ?ns= convention names the image under its upstream registry.
func TestNamespaceParam(t *testing.T) {
	st, host := newMirror(t)
	img, _ := random.Image(1024, 1)
	raw, _ := img.RawManifest()
	mt, _ := img.MediaType()
	cfg, _ := img.RawConfigFile()
	cd, _ := img.ConfigName()
	ls, _ := img.Layers()
	for _, b := range []struct {
		d    v1.Hash
		body func() []byte
	}{{cd, func() []byte { return cfg }}} {
		put(t, "http://"+host+"/v2/app/blobs/uploads/?ns=upstream.example&digest="+b.d.String(), http.MethodPost, b.body(), http.StatusCreated)
	}
	for _, l := range ls {
		rc, _ := l.Compressed()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(rc)
		d, _ := l.Digest()
		put(t, "http://"+host+"/v2/app/blobs/uploads/?ns=upstream.example&digest="+d.String(), http.MethodPost, buf.Bytes(), http.StatusCreated)
	}
	req, _ := http.NewRequest(http.MethodPut, "http://"+host+"/v2/app/manifests/v2?ns=upstream.example", bytes.NewReader(raw))
	req.Header.Set("Content-Type", string(mt))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("put manifest: %v %v", err, resp)
	}
	listed(t, st, "upstream.example/app:v2")
}

// A blob whose bytes do not hash to its digest is refused, monolithic or
// chunked, and never enters the store.
func TestCorruptBlobRefused(t *testing.T) {
	st, host := newMirror(t)
	good := []byte("the real layer")
	d := digestOf(good)
	bad := []byte("not the real layer")
	resp := put(t, "http://"+host+"/v2/app/blobs/uploads/?digest="+d.String(), http.MethodPost, bad, http.StatusBadRequest)
	if !strings.Contains(resp, "DIGEST_INVALID") {
		t.Fatalf("monolithic corrupt blob: %s", resp)
	}
	// Chunked: POST, PATCH, PUT ?digest=.
	r, err := http.Post("http://"+host+"/v2/app/blobs/uploads/", "", nil)
	if err != nil || r.StatusCode != http.StatusAccepted {
		t.Fatalf("start upload: %v %v", err, r)
	}
	loc := "http://" + host + r.Header.Get("Location")
	put(t, loc, http.MethodPatch, bad, http.StatusAccepted)
	resp = put(t, loc+"?digest="+d.String(), http.MethodPut, nil, http.StatusBadRequest)
	if !strings.Contains(resp, "DIGEST_INVALID") {
		t.Fatalf("chunked corrupt blob: %s", resp)
	}
	if st.Content().Has(d) {
		t.Fatal("a corrupt blob entered the store")
	}
	// The right bytes are then accepted.
	put(t, "http://"+host+"/v2/app/blobs/uploads/?digest="+d.String(), http.MethodPost, good, http.StatusCreated)
	if !st.Content().Has(d) {
		t.Fatal("the good blob is not in the store")
	}
}

// skopeo (a client nobody here wrote) pushes an OCI layout to the mirror.
func TestSkopeoPush(t *testing.T) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Fatal("skopeo is not installed (scripts/deps.sh installs it)")
	}
	st, host := newMirror(t)
	img, _ := random.Image(1<<20, 2)
	dir := filepath.Join(t.TempDir(), "oci")
	p, err := layout.Write(dir, emptyIdx())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(skopeo, "copy", "--dest-tls-verify=false", "oci:"+dir, "docker://"+host+"/registry.example.com/sk:1").CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	listed(t, st, "registry.example.com/sk:1")
	_ = os.RemoveAll(dir)
}

func put(t *testing.T, url, method string, body []byte, want int) string {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, url, resp.StatusCode, want, b.String())
	}
	return b.String()
}

func emptyIdx() v1.ImageIndex { return emptyIndex }

var emptyIndex = empty.Index

// pushNS pushes img to the mirror as repo:tag under ?ns=ns, as containerd
// and BuildKit mirrors do.
func pushNS(t *testing.T, host, ns, repoTag string, img v1.Image) {
	t.Helper()
	repo, tag, _ := strings.Cut(repoTag, ":")
	base := "http://" + host + "/v2/" + repo
	pushBlobs(t, host, repo+"/blobs/uploads/?ns="+ns+"&", img)
	raw, _ := img.RawManifest()
	mt, _ := img.MediaType()
	req, _ := http.NewRequest(http.MethodPut, base+"/manifests/"+tag+"?ns="+ns, bytes.NewReader(raw))
	req.Header.Set("Content-Type", string(mt))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("put manifest under ns=%s: %d", ns, resp.StatusCode)
	}
}
