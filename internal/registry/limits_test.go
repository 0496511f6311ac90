package registry

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryvm/ferry/internal/registry/store"
)

func setQuota(t *testing.T, tr *testRegistry, org string, q int64) {
	t.Helper()
	if err := tr.store.SetOrgQuota(context.Background(), org, &q); err != nil {
		t.Fatal(err)
	}
}

func wantError(t *testing.T, what string, r reply, status int, code string) {
	t.Helper()
	if r.status != status || !strings.Contains(r.body, `"code":"`+code+`"`) {
		t.Fatalf("%s: %d %s, want %d %s", what, r.status, r.body, status, code)
	}
}

// TestQuotaPerOrg: an org cannot store more than its quota, whether it
// pushes in one request, in chunks, in parallel, or as manifests; the
// answer is 403 DENIED; other orgs are unaffected; the server default
// applies to orgs without their own quota.
func TestQuotaPerOrg(t *testing.T) {
	tr := newTestRegistry(t, func(c *Config) { c.Limits.OrgStorage = 4 << 10 })
	a := bearer(tr.org(t, "small", store.ScopePush))
	b := bearer(tr.org(t, "other", store.ScopePush))
	setQuota(t, tr, "small", 1000)
	blob := func(seed string, n int) []byte { return bytes.Repeat([]byte(seed), n)[:n] }

	first := tr.pushBlob(t, a, "web", blob("a", 600))
	r := tr.do(t, call{method: "POST", path: "/v2/web/blobs/uploads/?digest=" + digest.FromBytes(blob("b", 600)).String(), auth: a, body: blob("b", 600), ctype: "application/octet-stream"})
	wantError(t, "monolithic push over quota", r, http.StatusForbidden, "DENIED")
	if !strings.Contains(r.body, "small") {
		t.Fatalf("denial does not name the org: %s", r.body)
	}
	// Chunked: the PATCH that crosses the quota is cut.
	loc := tr.startUpload(t, a, "web")
	u, _ := url.Parse(loc)
	r = tr.do(t, call{method: "PATCH", path: u.Path + "?" + u.RawQuery, auth: a, body: blob("c", 600), ctype: "application/octet-stream"})
	wantError(t, "chunk over quota", r, http.StatusForbidden, "DENIED")
	// A session cut short is cancelled (it could not be resumed), so it
	// holds nothing.
	if r := tr.do(t, call{method: "GET", path: u.Path + "?" + u.RawQuery, auth: a}); r.status != http.StatusNotFound {
		t.Fatalf("session cut for quota: %d %s", r.status, r.body)
	}
	// The first blob is intact, and a blob already held costs nothing.
	if g := tr.do(t, call{method: "GET", path: "/v2/web/blobs/" + first.String(), auth: a}); g.status != http.StatusOK || len(g.body) != 600 {
		t.Fatalf("first blob: %d %d bytes", g.status, len(g.body))
	}
	q := url.Values{"mount": {first.String()}, "from": {"web"}}
	if r := tr.do(t, call{method: "POST", path: "/v2/app/blobs/uploads/?" + q.Encode(), auth: a}); r.status != http.StatusCreated {
		t.Fatalf("mount of a held blob: %d %s", r.status, r.body)
	}
	// A manifest over the quota is refused; re-putting one held is not.
	setQuota(t, tr, "small", 2000)
	cfg := tr.pushBlob(t, a, "web", []byte("{}"))
	m := manifestJSON(cfg, 2, first, 600)
	if r := tr.do(t, call{method: "PUT", path: "/v2/web/manifests/v1", auth: a, body: m, ctype: v1.MediaTypeImageManifest}); r.status != http.StatusCreated {
		t.Fatalf("manifest within quota: %d %s", r.status, r.body)
	}
	setQuota(t, tr, "small", 600)
	time.Sleep(usageTTL)
	if r := tr.do(t, call{method: "PUT", path: "/v2/web/manifests/v2", auth: a, body: m, ctype: v1.MediaTypeImageManifest}); r.status != http.StatusCreated {
		t.Fatalf("tagging a held manifest over quota: %d %s", r.status, r.body)
	}
	big := []byte(strings.Replace(string(m), `"schemaVersion":2`, `"schemaVersion":2,"annotations":{"x":"`+strings.Repeat("y", 700)+`"}`, 1))
	wantError(t, "new manifest over quota", tr.do(t, call{method: "PUT", path: "/v2/web/manifests/v3", auth: a, body: big, ctype: v1.MediaTypeImageManifest}), http.StatusForbidden, "DENIED")
	wantError(t, "new session over quota", tr.do(t, call{method: "POST", path: "/v2/web/blobs/uploads/", auth: a}), http.StatusForbidden, "DENIED")
	// Another org has the server's default (4 KiB) and its own usage.
	tr.pushBlob(t, b, "web", blob("d", 3000))
	r = tr.do(t, call{method: "POST", path: "/v2/web/blobs/uploads/?digest=" + digest.FromBytes(blob("e", 3000)).String(), auth: b, body: blob("e", 3000), ctype: "application/octet-stream"})
	wantError(t, "default quota", r, http.StatusForbidden, "DENIED")
	// 0 lifts the limit for one org.
	setQuota(t, tr, "other", 0)
	time.Sleep(usageTTL)
	tr.pushBlob(t, b, "web", blob("e", 3000))
}

// TestQuotaConcurrentUploads: parallel uploads of one org are counted
// together while they stream, so together they cannot overshoot.
func TestQuotaConcurrentUploads(t *testing.T) {
	tr := newTestRegistry(t)
	a := bearer(tr.org(t, "acme", store.ScopePush))
	setQuota(t, tr, "acme", 100<<10)
	const n = 4
	var wg sync.WaitGroup
	status := make([]int, n)
	for i := range n {
		body := bytes.Repeat([]byte{byte('a' + i)}, 40<<10)
		pr, pw := io.Pipe()
		go func() { // trickle in pieces so the uploads overlap
			for off := 0; off < len(body); off += 4 << 10 {
				_, _ = pw.Write(body[off : off+4<<10])
				time.Sleep(20 * time.Millisecond)
			}
			_ = pw.Close()
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", tr.ts.URL+"/v2/web/blobs/uploads/?digest="+digest.FromBytes(body).String(), pr)
			req.ContentLength = int64(len(body))
			req.Header.Set("Authorization", a)
			req.Header.Set("Content-Type", "application/octet-stream")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				status[i] = -1
				return
			}
			resp.Body.Close()
			status[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	ok := 0
	for _, s := range status {
		if s == http.StatusCreated {
			ok++
		}
	}
	if ok > 2 {
		t.Fatalf("%d of %d parallel 40 KiB uploads fit a 100 KiB quota: %v", ok, n, status)
	}
	u, _ := tr.store.Usage(context.Background(), mustOrg(t, tr, "acme").ID, time.Now().Add(-time.Hour))
	if u > 100<<10 {
		t.Fatalf("usage %d over the 100 KiB quota", u)
	}
}

// TestUploadSessionCap: an org has at most the configured number of open
// sessions (429 TOOMANYREQUESTS past it); finishing or cancelling one makes
// room; other orgs and single-request uploads are unaffected.
func TestUploadSessionCap(t *testing.T) {
	tr := newTestRegistry(t, func(c *Config) { c.Limits.UploadSessions = 3 })
	a := bearer(tr.org(t, "acme", store.ScopePush))
	b := bearer(tr.org(t, "other", store.ScopePush))
	var locs []string
	for range 3 {
		locs = append(locs, tr.startUpload(t, a, "web"))
	}
	r := tr.do(t, call{method: "POST", path: "/v2/web/blobs/uploads/", auth: a})
	wantError(t, "fourth session", r, http.StatusTooManyRequests, "TOOMANYREQUESTS")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	tr.startUpload(t, b, "web")           // another org's count is its own
	tr.pushBlob(t, a, "web", []byte("x")) // one request, no open session
	u, _ := url.Parse(locs[0])
	if r := tr.do(t, call{method: "DELETE", path: u.Path + "?" + u.RawQuery, auth: a}); r.status != http.StatusNoContent {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	locs[0] = tr.startUpload(t, a, "web")
	wantError(t, "at the cap again", tr.do(t, call{method: "POST", path: "/v2/web/blobs/uploads/", auth: a}), http.StatusTooManyRequests, "TOOMANYREQUESTS")
	u, _ = url.Parse(locs[1])
	q := u.Query()
	q.Set("digest", digest.FromString("done").String())
	if r := tr.do(t, call{method: "PUT", path: u.Path + "?" + q.Encode(), auth: a, body: []byte("done"), ctype: "application/octet-stream"}); r.status != http.StatusCreated {
		t.Fatalf("complete: %d %s", r.status, r.body)
	}
	tr.startUpload(t, a, "web")
}

// slowLimits make the pace checks quick to trip in tests.
func slowLimits(c *Config) {
	c.Limits.BodyMinRate = 1 << 10
	c.Limits.BodyGrace = time.Second
	c.Limits.BodyStall = 2 * time.Second
	c.Limits.ReadHeaderTimeout = time.Second
}

// rawRequest writes a request's head and returns the connection.
func rawRequest(t *testing.T, host, head string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	return conn
}

// heldFor reports whether the server still holds conn after d: it reads
// until the server answers or closes, the client side giving up at d.
func heldFor(conn net.Conn, d time.Duration) (bool, string) {
	_ = conn.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true, string(b)
	}
	return false, string(b)
}

// TestSlowBodiesAreCut: a PATCH trickling at 1 B/s, one that stalls, and a
// client that never finishes its headers are all let go by the server
// (the PATCH with 408 BLOB_UPLOAD_INVALID), long before they would end.
func TestSlowBodiesAreCut(t *testing.T) {
	tr := newTestRegistry(t, slowLimits)
	a := bearer(tr.org(t, "acme", store.ScopePush))
	patch := func() string { // a PATCH head of a fresh session, promising 100000 bytes
		loc, _ := url.Parse(tr.startUpload(t, a, "web"))
		return fmt.Sprintf("PATCH %s?%s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n",
			loc.Path, loc.RawQuery, tr.host, a)
	}

	t.Run("trickle", func(t *testing.T) {
		conn := rawRequest(t, tr.host, patch())
		stop := make(chan struct{})
		defer close(stop)
		go func() { // 1 byte a second: 100000 bytes would take a day
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Second):
					if _, err := conn.Write([]byte("x")); err != nil {
						return
					}
				}
			}
		}()
		held, got := heldFor(conn, 60*time.Second)
		if held {
			t.Fatal("a 1 B/s body still holds its connection after 60 s")
		}
		if !strings.Contains(got, "408") || !strings.Contains(got, "BLOB_UPLOAD_INVALID") {
			t.Fatalf("answer to a trickling body: %q", got)
		}
	})
	t.Run("stall", func(t *testing.T) {
		conn := rawRequest(t, tr.host, patch()+strings.Repeat("x", 2000))
		if held, got := heldFor(conn, 60*time.Second); held || !strings.Contains(got, "408") {
			t.Fatalf("stalled body: held=%v %q", held, got)
		}
	})
	t.Run("unread body", func(t *testing.T) {
		// Refused before its body is read: the server's draining of the
		// body it never read is bounded too.
		conn := rawRequest(t, tr.host, fmt.Sprintf("POST /v2/web/blobs/uploads/ HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\n"+
			"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\nmount=", tr.host, a))
		if held, got := heldFor(conn, 60*time.Second); held || !strings.Contains(got, "415") {
			t.Fatalf("unread body: held=%v %q", held, got)
		}
	})
	t.Run("slow headers", func(t *testing.T) {
		srv := serveForTest(t, tr.Server)
		conn := rawRequest(t, srv, "GET /v2/ HTTP/1.1\r\nHost: x\r\n")
		if held, _ := heldFor(conn, 60*time.Second); held {
			t.Fatal("unfinished headers still hold the connection after 60 s")
		}
	})
	// A normal client is not affected.
	tr.pushBlob(t, a, "web", bytes.Repeat([]byte("y"), 1<<20))
}

// serveForTest runs s.Serve (with the configured header and idle
// timeouts) on a fresh listener and returns its address.
func serveForTest(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return ln.Addr().String()
}

// TestSlowReaderIsCut: a client that does not read a blob download does
// not keep the server writing to it forever.
func TestSlowReaderIsCut(t *testing.T) {
	tr := newTestRegistry(t, slowLimits)
	a := bearer(tr.org(t, "acme", store.ScopePush))
	big := bytes.Repeat([]byte("z"), 64<<20) // more than the socket buffers hold
	d := tr.pushBlob(t, a, "web", big)
	conn := rawRequest(t, tr.host, fmt.Sprintf("GET /v2/web/blobs/%s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\n\r\n", d, tr.host, a))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %v %v", resp, err)
	}
	time.Sleep(8 * time.Second) // well past the 2 s stall, reading nothing
	_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	n, _ := io.Copy(io.Discard, resp.Body)
	if n >= int64(len(big)) {
		t.Fatalf("the server kept writing to a reader that stalled: got all %d bytes", n)
	}
	slog.Debug("slow reader cut", "after", n)
}
