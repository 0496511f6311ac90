package registry

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"

	"github.com/ferryvm/ferry/internal/registry/auth"
	"github.com/ferryvm/ferry/internal/registry/store"
)

func TestMain(m *testing.M) {
	logrus.SetOutput(io.Discard) // distribution's request logs
	os.Exit(m.Run())
}

// testRegistry is a registry served by httptest with a temp root.
type testRegistry struct {
	*Server
	cfg  Config
	ts   *httptest.Server
	host string // host:port, as image references want it
	root string
}

func newTestRegistry(t testing.TB, mods ...func(*Config)) *testRegistry {
	t.Helper()
	root := t.TempDir()
	cfg := Config{Root: root}
	for _, m := range mods {
		m(&cfg)
	}
	s, err := New(context.Background(), cfg, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		ts.Close()
		_ = s.Close()
	})
	return &testRegistry{Server: s, cfg: cfg, ts: ts, host: strings.TrimPrefix(ts.URL, "http://"), root: root}
}

// org creates an org and a token of scope for it, returning the secret.
func (tr *testRegistry) org(t testing.TB, name string, scope store.Scope) string {
	t.Helper()
	ctx := context.Background()
	if _, err := tr.store.Org(ctx, name); err != nil {
		if _, err := tr.store.CreateOrg(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	_, secret, err := tr.store.CreateToken(ctx, name, store.NewTokenOpts{Scope: scope})
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// call is one raw HTTP request to the test registry.
type call struct {
	method, path string
	auth         string // full Authorization header value ("" for none)
	body         []byte
	ctype        string
	accept       string
}

type reply struct {
	status int
	header http.Header
	body   string
}

func (tr *testRegistry) do(t testing.TB, c call) reply {
	t.Helper()
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, tr.ts.URL+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	// Keep the path exactly as written (percent-encodings included).
	req.URL.Opaque = "//" + tr.host + strings.SplitN(c.path, "?", 2)[0]
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	if c.accept != "" {
		req.Header.Set("Accept", c.accept)
	}
	if c.ctype != "" {
		req.Header.Set("Content-Type", c.ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func bearer(secret string) string { return "Bearer " + secret }

// pushBlob uploads b to repo in one POST and returns its digest.
func (tr *testRegistry) pushBlob(t testing.TB, auth, repo string, b []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(b)
	r := tr.do(t, call{method: "POST", path: "/v2/" + repo + "/blobs/uploads/?digest=" + d.String(), auth: auth, body: b, ctype: "application/octet-stream"})
	if r.status != http.StatusCreated {
		t.Fatalf("push blob to %s: %d %s", repo, r.status, r.body)
	}
	return d
}

// pushImage pushes a one-layer image (config + layer from content) as
// repo:tag and returns the manifest's digest.
func (tr *testRegistry) pushImage(t *testing.T, auth, repo, tag, content string) (digest.Digest, digest.Digest) {
	t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"ferry":"` + content + `"}`)
	layer := []byte("layer:" + content)
	cd := tr.pushBlob(t, auth, repo, cfg)
	ld := tr.pushBlob(t, auth, repo, layer)
	m := manifestJSON(cd, int64(len(cfg)), ld, int64(len(layer)))
	r := tr.do(t, call{method: "PUT", path: "/v2/" + repo + "/manifests/" + tag, auth: auth, body: m, ctype: v1.MediaTypeImageManifest})
	if r.status != http.StatusCreated {
		t.Fatalf("push manifest %s:%s: %d %s", repo, tag, r.status, r.body)
	}
	return digest.FromBytes(m), ld
}

func manifestJSON(cd digest.Digest, csize int64, ld digest.Digest, lsize int64) []byte {
	return []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + cd.String() + `","size":` + strconv.FormatInt(csize, 10) + `},` +
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` + ld.String() + `","size":` + strconv.FormatInt(lsize, 10) + `}]}`)
}

func sha256hex(b []byte) string { return digest.FromBytes(b).Encoded() }

type authAccess = auth.Access

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
