package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	v1spec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/registry/gc"
	"github.com/ferryvm/ferry/internal/registry/s3test"
	"github.com/ferryvm/ferry/internal/registry/store"
	"github.com/ferryvm/ferry/internal/registry/store/pgtest"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// cluster is two registry replicas, each with its own (unused) root, sharing
// blobs on a real S3 server (SeaweedFS), metadata on a throwaway Postgres
// and one HTTP secret, behind a round-robin front that alternates requests
// between them.
type cluster struct {
	s3       *s3test.Server
	dsn      string
	replicas []*testRegistry
	front    string // host:port of the alternating front
	secret   string
}

// replica starts a replica of c (not behind the front).
func (c *cluster) replica(t *testing.T, mods ...func(*Config)) *testRegistry {
	return newTestRegistry(t, func(cfg *Config) {
		cfg.DB, cfg.Secret = c.dsn, c.secret
		cfg.Storage = c.s3.Storage("/registry")
		for _, m := range mods {
			m(cfg)
		}
		if cfg.Realm == frontRealm {
			cfg.Realm = "http://" + c.front + "/token"
		}
	})
}

// frontRealm as Config.Realm stands for the front's token endpoint.
const frontRealm = "front"

func newCluster(t *testing.T, mods ...func(*Config)) *cluster {
	t.Helper()
	c := &cluster{s3: s3test.Start(t), dsn: pgtest.DSN(t)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.front = ln.Addr().String()
	c.secret = randomSecret()
	for range 2 {
		c.replicas = append(c.replicas, c.replica(t, mods...))
	}
	var n atomic.Uint64
	front := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		u, _ := url.Parse(c.replicas[n.Add(1)%2].ts.URL)
		pr.SetURL(u)
	}}
	srv := &http.Server{Handler: front, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return c
}

// kill stops replica i the hard way: every connection and the listener
// closed while requests are in flight, then the server shut down.
func (c *cluster) kill(i int) {
	r := c.replicas[i]
	r.ts.CloseClientConnections()
	r.ts.Close()
	_ = r.Server.Close()
}

// TestReplicasShareS3AndPostgres pushes an image through one replica and
// pulls it through the other: their roots are separate, so the blobs come
// from S3 and the org, token and tags from Postgres.
func TestReplicasShareS3AndPostgres(t *testing.T) {
	c := newCluster(t)
	a, b := c.replicas[0], c.replicas[1]
	secret := a.org(t, "acme", store.ScopePush)
	basic := remote.WithAuth(&authn.Basic{Username: "acme", Password: secret})
	_, multi := ociLayout(t)
	if err := remote.WriteIndex(mustRef(t, a.host+"/base:multi"), multi, basic); err != nil {
		t.Fatal(err)
	}
	want, _ := multi.Digest()
	idx, err := remote.Index(mustRef(t, b.host+"/base:multi"), basic)
	if err != nil {
		t.Fatalf("pull through the other replica: %v", err)
	}
	if got, _ := idx.Digest(); got != want {
		t.Fatalf("index digest through replica b %s, want %s", got, want)
	}
	im, _ := idx.IndexManifest()
	for _, m := range im.Manifests {
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		layers, _ := img.Layers()
		for _, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				t.Fatalf("layer through replica b: %v", err)
			}
			n, err := io.Copy(io.Discard, rc) // verifies the digest at EOF
			_ = rc.Close()
			if err != nil || n == 0 {
				t.Fatalf("layer through replica b: %d bytes, %v", n, err)
			}
		}
	}
	// Nothing was written to either replica's own root: S3 holds it all.
	for i, r := range c.replicas {
		if rep := r.do(t, call{method: "GET", path: "/healthz"}); rep.status != http.StatusOK {
			t.Fatalf("replica %d /healthz: %d %s", i, rep.status, rep.body)
		}
		if _, err := os.Stat(filepath.Join(r.root, "storage")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("replica %d wrote to its own root: %v", i, err)
		}
	}
	if _, err := remote.Index(mustRef(t, b.host+"/base:multi"), remote.WithAuth(&authn.Basic{Username: "acme", Password: "ferry_wrong"})); err == nil {
		t.Fatal("replica b accepted a wrong token")
	}
}

// TestReplicasOCIConformance runs the OCI distribution-spec conformance
// suite against the pair, every request alternating between the replicas
// (an upload's POST, PATCHes and PUT land on different replicas).
func TestReplicasOCIConformance(t *testing.T) {
	prereq.Short(t, "the OCI conformance suite")
	// Tokens too come through the front, from either replica.
	c := newCluster(t, func(cfg *Config) { cfg.Realm = frontRealm })
	secret := c.replicas[0].org(t, "conformance-org", store.ScopePush)
	runConformance(t, c.front, "conformance-org", secret)
}

// TestReplicasBlobRedirect: with blob_redirect a blob GET answers 307 to a
// presigned S3 URL whose signature S3 checks; without it the bytes come
// through the registry.
func TestReplicasBlobRedirect(t *testing.T) {
	c := newCluster(t, func(cfg *Config) { cfg.BlobRedirect = true })
	r := c.replicas[0]
	auth := bearer(r.org(t, "acme", store.ScopePush))
	blob := make([]byte, 64<<10)
	_, _ = rand.Read(blob)
	d := r.pushBlob(t, auth, "web", blob)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(host string) *http.Response {
		req, _ := http.NewRequest("GET", "http://"+host+"/v2/web/blobs/"+d.String(), nil)
		req.Header.Set("Authorization", auth)
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := get(c.replicas[1].host)
	_ = resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, c.s3.Endpoint+"/") || !strings.Contains(loc, "X-Amz-Signature=") {
		t.Fatalf("blob GET with blob_redirect: %d Location %q, want 307 to a presigned %s URL", resp.StatusCode, loc, c.s3.Endpoint)
	}
	body, status := fetch(t, loc)
	if status != http.StatusOK || !bytes.Equal(body, blob) {
		t.Fatalf("presigned URL: %d, %d bytes (want %d)", status, len(body), len(blob))
	}
	// The signature is checked: a URL with another signature is refused.
	bad := regexpReplaceSig(loc)
	if _, status := fetch(t, bad); status != http.StatusForbidden {
		t.Fatalf("presigned URL with a forged signature: %d, want 403", status)
	}
	// A HEAD redirects too, and counts as the org finding the blob (gc's
	// grace window keeps it), as a 200 does.
	org := mustOrg(t, r, "acme")
	time.Sleep(1100 * time.Millisecond) // activity is recorded to the second
	since := time.Now()
	head, _ := http.NewRequest("HEAD", "http://"+r.host+"/v2/web/blobs/"+d.String(), nil)
	head.Header.Set("Authorization", auth)
	if resp, err := noFollow.Do(head); err != nil || resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("blob HEAD with blob_redirect: %v %v", resp, err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if ok, err := r.Store().BlobTouchedSince(context.Background(), org.ID, d.String(), since.Truncate(time.Second)); err != nil || ok {
			if err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a redirected HEAD did not record the org's use of the blob")
		}
	}
	// Another org's token gets no redirect (nor the bytes).
	other := bearer(r.org(t, "other", store.ScopePush))
	req, _ := http.NewRequest("GET", "http://"+r.host+"/v2/web/blobs/"+d.String(), nil)
	req.Header.Set("Authorization", other)
	if resp, err := noFollow.Do(req); err != nil || resp.StatusCode != http.StatusNotFound || resp.Header.Get("Location") != "" {
		t.Fatalf("another org's blob GET: %v %v", resp, err)
	}

	// Without blob_redirect (the default) the registry serves the bytes.
	plain := c.replica(t)
	got := plain.do(t, call{method: "GET", path: "/v2/web/blobs/" + d.String(), auth: auth})
	if got.status != http.StatusOK || got.header.Get("Location") != "" || got.body != string(blob) {
		t.Fatalf("blob GET without blob_redirect: %d Location %q, %d bytes", got.status, got.header.Get("Location"), len(got.body))
	}
}

func fetch(t *testing.T, u string) ([]byte, int) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b, resp.StatusCode
}

// regexpReplaceSig returns u with its X-Amz-Signature's first hex digit changed.
func regexpReplaceSig(u string) string {
	i := strings.Index(u, "X-Amz-Signature=") + len("X-Amz-Signature=")
	c := byte('0')
	if u[i] == '0' {
		c = '1'
	}
	return u[:i] + string(c) + u[i+1:]
}

// TestReplicasGCOneAtATime: gc holds a Postgres advisory lock, so while one
// replica collects another's gc refuses at once; and gc running over and
// over on one replica while the other serves pushes loses no blob of any
// pushed image.
func TestReplicasGCOneAtATime(t *testing.T) {
	c := newCluster(t)
	a, b := c.replicas[0], c.replicas[1]
	secret := a.org(t, "acme", store.ScopePush)
	ctx := context.Background()
	unlock, err := a.Store().TryGCLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := GC(ctx, b.cfg, b.Store(), gc.Options{}); !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "another replica") {
		t.Fatalf("gc on replica b while replica a holds the lock: %v, want a conflict", err)
	}
	unlock()
	if _, err := GC(ctx, b.cfg, b.Store(), gc.Options{}); err != nil {
		t.Fatalf("gc on replica b once the lock is free: %v", err)
	}

	auth := bearer(secret)
	stop := make(chan struct{})
	var runs, conflicts atomic.Int64
	var wg sync.WaitGroup
	for _, r := range c.replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := GC(ctx, r.cfg, r.Store(), gc.Options{})
				switch {
				case errors.Is(err, errdefs.ErrConflict):
					conflicts.Add(1)
					time.Sleep(10 * time.Millisecond)
				case err != nil:
					t.Errorf("gc during pushes: %v", err)
					return
				default:
					runs.Add(1)
				}
			}
		}()
	}
	type pushed struct{ tag, manifest, layer digest.Digest }
	var images []pushed
	for i := range 8 {
		tag := "v" + strconv.Itoa(i)
		m, l := a.pushImage(t, auth, "app", tag, "content-"+tag)
		images = append(images, pushed{digest.Digest(tag), m, l})
	}
	close(stop)
	wg.Wait()
	if runs.Load() == 0 {
		t.Fatal("no gc ran during the pushes")
	}
	t.Logf("gc: %d runs, %d refused while the other replica held the lock", runs.Load(), conflicts.Load())
	if _, err := GC(ctx, b.cfg, b.Store(), gc.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, im := range images {
		if r := b.do(t, call{method: "GET", path: "/v2/app/manifests/" + string(im.tag), auth: auth, accept: v1spec.MediaTypeImageManifest}); r.status != http.StatusOK || digest.FromString(r.body) != im.manifest {
			t.Fatalf("manifest %s after gc: %d", im.tag, r.status)
		}
		if r := b.do(t, call{method: "GET", path: "/v2/app/blobs/" + im.layer.String(), auth: auth}); r.status != http.StatusOK || digest.FromString(r.body) != im.layer {
			t.Fatalf("layer of %s after gc during pushes: %d", im.tag, r.status)
		}
	}
}

// TestReplicaKilledMidPush kills the replica serving an upload while a
// chunk is in flight. The upload lives in S3 and its state is signed with
// the shared secret, so the client resumes it through the other replica
// from the offset that replica reports; another org cannot touch it; and
// the image pushed before the kill and the one finished after it are
// whole, also after gc.
func TestReplicaKilledMidPush(t *testing.T) {
	c := newCluster(t)
	a, b := c.replicas[0], c.replicas[1]
	auth := bearer(a.org(t, "acme", store.ScopePush))
	other := bearer(a.org(t, "other", store.ScopePush))
	before, beforeLayer := a.pushImage(t, auth, "app", "before", "pushed before the kill")

	const chunk = 6 << 20 // over S3's 5 MiB minimum part
	blob := make([]byte, 3*chunk)
	_, _ = rand.Read(blob)
	d := digest.FromBytes(blob)
	loc := a.startUpload(t, auth, "app")
	patch := func(tr *testRegistry, loc string, body io.Reader, from, to int) (*http.Response, error) {
		req, _ := http.NewRequest("PATCH", tr.ts.URL+loc, body)
		req.Header.Set("Authorization", auth)
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Content-Range", strconv.Itoa(from)+"-"+strconv.Itoa(to-1))
		req.ContentLength = int64(to - from)
		return http.DefaultClient.Do(req)
	}
	resp, err := patch(a, loc, bytes.NewReader(blob[:chunk]), 0, chunk)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("first chunk: %v %v", resp, err)
	}
	_ = resp.Body.Close()
	loc = resp.Header.Get("Location")

	// The second chunk: half of it is sent, then replica a dies.
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		resp, err := patch(a, loc, pr, chunk, 2*chunk)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode < 400 {
				err = errors.New("PATCH to a killed replica succeeded: " + resp.Status)
			}
		}
		done <- err
	}()
	if _, err := pw.Write(blob[chunk : chunk+chunk/2]); err != nil {
		t.Fatal(err)
	}
	c.kill(0)
	_ = pw.CloseWithError(errors.New("replica killed"))
	if err := <-done; err == nil {
		t.Fatal("the interrupted PATCH reported success")
	}

	// Another org gets nothing from the upload URL on the surviving replica.
	for _, m := range []string{"GET", "PATCH", "PUT", "DELETE"} {
		path := loc
		if m == "PUT" {
			path += "&digest=" + d.String()
		}
		r := b.do(t, call{method: m, path: path, auth: other, body: []byte("x"), ctype: "application/octet-stream"})
		if r.status < 400 || r.header.Get("Range") != "" || strings.Contains(r.body, "acme") {
			t.Fatalf("org other's %s of acme's upload on replica b: %d Range %q %.200s", m, r.status, r.header.Get("Range"), r.body)
		}
	}

	// The client asks replica b where the upload stands and resumes there.
	st := b.do(t, call{method: "GET", path: loc, auth: auth})
	if st.status != http.StatusNoContent {
		t.Fatalf("upload status on replica b: %d %s", st.status, st.body)
	}
	var end int
	if rng := st.header.Get("Range"); rng != "" {
		if _, after, ok := strings.Cut(rng, "-"); ok {
			end, _ = strconv.Atoi(after)
			end++
		}
	}
	if end < chunk || end > 2*chunk {
		t.Fatalf("replica b reports %q of the upload, want at least the first chunk (%d bytes)", st.header.Get("Range"), chunk)
	}
	t.Logf("replica b resumes at %d bytes (first chunk %d, %d of the interrupted one kept)", end, chunk, end-chunk)
	loc = st.header.Get("Location")
	resp, err = patch(b, loc, bytes.NewReader(blob[end:]), end, len(blob))
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("resume on replica b: %v %v", resp, err)
	}
	_ = resp.Body.Close()
	loc = resp.Header.Get("Location")
	if r := b.do(t, call{method: "PUT", path: loc + "&digest=" + d.String(), auth: auth}); r.status != http.StatusCreated {
		t.Fatalf("finish the upload on replica b: %d %s", r.status, r.body)
	}
	cfgBlob := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	cd := b.pushBlob(t, auth, "app", cfgBlob)
	m := manifestJSON(cd, int64(len(cfgBlob)), d, int64(len(blob)))
	if r := b.do(t, call{method: "PUT", path: "/v2/app/manifests/after", auth: auth, body: m, ctype: v1spec.MediaTypeImageManifest}); r.status != http.StatusCreated {
		t.Fatalf("manifest after the kill: %d %s", r.status, r.body)
	}
	if _, err := GC(context.Background(), b.cfg, b.Store(), gc.Options{}); err != nil {
		t.Fatal(err)
	}
	check := func(ref string, want digest.Digest, layer digest.Digest) {
		if r := b.do(t, call{method: "GET", path: "/v2/app/manifests/" + ref, auth: auth, accept: v1spec.MediaTypeImageManifest}); r.status != http.StatusOK || digest.FromString(r.body) != want {
			t.Fatalf("manifest %s: %d", ref, r.status)
		}
		if r := b.do(t, call{method: "GET", path: "/v2/app/blobs/" + layer.String(), auth: auth}); r.status != http.StatusOK || digest.FromString(r.body) != layer {
			t.Fatalf("layer of %s: %d, %d bytes", ref, r.status, len(r.body))
		}
	}
	check("before", before, beforeLayer)
	check("after", digest.FromBytes(m), d)
	if r := b.do(t, call{method: "HEAD", path: "/v2/app/blobs/" + d.String(), auth: other}); r.status != http.StatusNotFound {
		t.Fatalf("org other sees acme's resumed blob: %d", r.status)
	}
	// And a whole push through ggcr (its own retries) on the survivor works.
	_, multi := ociLayout(t)
	if err := remote.WriteIndex(mustRef(t, b.host+"/base:multi"), multi, remote.WithAuth(&authn.Basic{Username: "acme", Password: strings.TrimPrefix(auth, "Bearer ")})); err != nil {
		t.Fatal(err)
	}
}

// TestReplicasGCInterval: with gc_interval the replicas collect by
// themselves, taking turns: an unreferenced blob pushed through one
// disappears once past the grace window.
func TestReplicasGCInterval(t *testing.T) {
	c := newCluster(t, func(cfg *Config) { cfg.GCInterval, cfg.GCGrace = 100*time.Millisecond, time.Millisecond })
	a, b := c.replicas[0], c.replicas[1]
	auth := bearer(a.org(t, "acme", store.ScopePush))
	d := a.pushBlob(t, auth, "web", []byte("nobody references this"))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if r := b.do(t, call{method: "HEAD", path: "/v2/web/blobs/" + d.String(), auth: auth}); r.status == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the replicas' gc loop never collected an unreferenced blob")
		}
	}
}
