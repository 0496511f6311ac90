package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferryvm/ferry/internal/image"
	"github.com/ferryvm/ferry/internal/testimage"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

func freeTCPAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// slowBlobs throttles blob downloads (while slow is set) and counts the
// blob bytes served.
type slowBlobs struct {
	slow   atomic.Bool
	served atomic.Int64
}

func (s *slowBlobs) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			w = &slowWriter{ResponseWriter: w, s: s}
		}
		next.ServeHTTP(w, r)
	})
}

type slowWriter struct {
	http.ResponseWriter
	s *slowBlobs
}

func (w *slowWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := min(len(p), 32<<10)
		if w.s.slow.Load() {
			time.Sleep(20 * time.Millisecond) // ~1.6 MB/s
		}
		m, err := w.ResponseWriter.Write(p[:chunk])
		n += m
		w.s.served.Add(int64(m))
		if err != nil {
			return n, err
		}
		p = p[chunk:]
	}
	return n, nil
}

// verifyBlobs re-hashes every blob under the root's content store.
func verifyBlobs(t *testing.T, root string) int {
	t.Helper()
	dir := filepath.Join(root, "content", "blobs", "sha256")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != e.Name() {
			t.Errorf("blob %s holds content with digest %s", e.Name(), got)
		}
	}
	return len(ents)
}

// TestKillDaemonDuringPull SIGKILLs a real daemon in the middle of a pull,
// restarts it on the same root, and checks the cache verifies, lists no
// partial image, and the repeated pull succeeds: against the in-process
// registry and against Debian's docker-registry (behind a throttling proxy).
func TestKillDaemonDuringPull(t *testing.T) {
	prereq.Short(t, "SIGKILLs a daemon during slow pulls")
	img, err := testimage.Random(7, 4, 2<<20) // 4 layers of 2 MiB random data
	if err != nil {
		t.Fatal(err)
	}
	t.Run("in-process registry", func(t *testing.T) {
		sb := &slowBlobs{}
		reg := testimage.Serve(t, sb.wrap)
		killDuringPull(t, testimage.Push(t, reg, "test/big:v1", img), sb)
	})
	t.Run("docker-registry", func(t *testing.T) {
		upstream := testimage.DockerRegistry(t, "")
		testimage.Push(t, upstream, "test/big:v1", img)
		sb := &slowBlobs{}
		proxy := httptest.NewServer(sb.wrap(httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: upstream})))
		t.Cleanup(proxy.Close)
		killDuringPull(t, strings.TrimPrefix(proxy.URL, "http://")+"/test/big:v1", sb)
	})
}

func killDuringPull(t *testing.T, ref string, sb *slowBlobs) {
	sb.served.Store(0)
	sb.slow.Store(true)
	e := newFerryEnv(t)

	pull := e.command([]string{"DOCKER_CONFIG=" + e.dockerCfg}, "pull", ref)
	pull.Stdout, pull.Stderr = io.Discard, io.Discard
	if err := pull.Start(); err != nil {
		t.Fatal(err)
	}
	pullDone := make(chan error, 1)
	go func() { pullDone <- pull.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for sb.served.Load() < 3<<20 { // mid-pull: some layers done, others in flight
		if time.Now().After(deadline) {
			t.Fatalf("pull made no progress: %d bytes served\n%s", sb.served.Load(), e.daemonLog)
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.killDaemon()
	if err := <-pullDone; err == nil {
		t.Fatal("pull succeeded although the daemon was killed mid-pull")
	}
	t.Logf("killed the daemon after %d blob bytes", sb.served.Load())

	sb.slow.Store(false)
	e.startDaemon()
	verifyBlobs(t, e.root)
	if out := e.ok("image", "verify"); !strings.Contains(out, "0 images") {
		t.Errorf("verify after the kill:\n%s", out)
	}
	var list []image.Summary
	if err := json.Unmarshal([]byte(e.ok("images", "-a", "--format", "json")), &list); err != nil || len(list) != 0 {
		t.Fatalf("a killed pull left images listed: %+v, %v", list, err)
	}

	if out := e.ok("pull", ref); !strings.HasSuffix(out, ref+"\n") {
		t.Fatalf("repeated pull:\n%s", out)
	}
	if n := verifyBlobs(t, e.root); n != 6 { // 4 layers + config + manifest
		t.Errorf("%d blobs after the repeated pull, want 6", n)
	}
	if out := e.ok("image", "verify"); !strings.Contains(out, "1 images, 6 blobs") {
		t.Errorf("verify after the repeated pull:\n%s", out)
	}
}

// TestPullUsesCallersCredentials logs in with the CLI's own Docker config
// and pulls from a registry requiring basic auth through a daemon whose own
// keychain is empty: the daemon must use the caller's credentials and never
// log them.
func TestPullUsesCallersCredentials(t *testing.T) {
	const user, pass = "ferry-user", "pa55-w0rd-XYZ"
	reg := testimage.Serve(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"login needed"}]}`, http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	img, err := testimage.Random(3, 1, 16<<10)
	if err != nil {
		t.Fatal(err)
	}
	ref := reg + "/priv/app:1"
	nref, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(nref, img, remote.WithAuth(&authn.Basic{Username: user, Password: pass})); err != nil {
		t.Fatal(err)
	}
	e := newFerryEnv(t)

	e.fails([]string{reg}, "pull", ref) // no credentials anywhere
	r := e.run(strings.NewReader(pass+"\n"), "login", "-u", user, "--password-stdin", reg)
	if r.code != 0 || !strings.Contains(r.stdout, "Login Succeeded") {
		t.Fatalf("login: %s", r)
	}
	if b, err := os.ReadFile(filepath.Join(e.dockerCfg, "config.json")); err != nil || !strings.Contains(string(b), `"`+reg+`"`) {
		t.Fatalf("login did not write the CLI's config.json: %s, %v", b, err)
	}
	if r := e.run(strings.NewReader("wrong\n"), "login", "-u", user, "--password-stdin", reg); r.code == 0 {
		t.Errorf("login with a wrong password succeeded: %s", r)
	}
	e.ok("pull", ref)
	if strings.Contains(e.daemonLog.String(), pass) {
		t.Errorf("the daemon logged the password:\n%s", e.daemonLog)
	}
	if out := e.ok("logout", reg); !strings.Contains(out, "Removing login credentials for "+reg) {
		t.Errorf("logout: %s", out)
	}
	e.ok("rmi", ref)
	e.fails([]string{reg}, "pull", ref)
}
