package registry

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/registry/store"
)

func TestParseRoute(t *testing.T) {
	for path, want := range map[string]route{
		"/v2/":                           {name: routeBase},
		"/v2/_catalog":                   {name: routeCatalog},
		"/v2/web/tags/list":              {name: routeTags, repo: "web", rest: "/tags/list"},
		"/v2/a/b/manifests/latest":       {name: routeManifest, repo: "a/b", rest: "/manifests/latest"},
		"/v2/a/blobs/uploads/":           {name: routeUpload, repo: "a", rest: "/blobs/uploads/"},
		"/v2/a/blobs/uploads/uuid-1":     {name: routeUploadPart, repo: "a", rest: "/blobs/uploads/uuid-1"},
		"/v2/a/blobs/sha256:ab":          {name: routeBlob, repo: "a", rest: "/blobs/sha256:ab"},
		"/v2/a/blobs/b/blobs/sha256:ab":  {name: routeBlob, repo: "a/blobs/b", rest: "/blobs/sha256:ab"},
		"/v2/a/manifests/x/manifests/v1": {name: routeManifest, repo: "a/manifests/x", rest: "/manifests/v1"},
		"/v2/a/referrers/sha256:ab":      {name: routeReferrers, repo: "a", rest: "/referrers/sha256:ab"},
		"/v2/nothing":                    {name: routeUnknown},
	} {
		if got := parseRoute(path); got != want {
			t.Errorf("parseRoute(%q) = %+v, want %+v", path, got, want)
		}
	}
}

func TestNamespaceMapping(t *testing.T) {
	ns := NamespaceFor("0123456789abcdef")
	for name, ok := range map[string]bool{
		"web": true, "a/b-c/d_e.f": true, "a__b": true,
		"": false, "../x": false, "Web": false, "a//b": false, "a/": false, "-a": false, "a..b": false,
		"wеb": false, strings.Repeat("a", 237): false, strings.Repeat("a", 236): true,
	} {
		in, got := ns.Internal(name)
		if got != ok {
			t.Errorf("Internal(%q) ok=%v, want %v", name, got, ok)
			continue
		}
		if ok {
			if out, back := ns.External(in); !back || out != name {
				t.Errorf("External(Internal(%q)) = %q, %v", name, out, back)
			}
		}
	}
	if _, ok := ns.External("o-ffffffffffffffff/web"); ok {
		t.Error("External accepted another org's name")
	}
}

// TestClientsNeverSeeThePrefix walks a chunked upload, a tag list with
// pagination and an error, and checks no header or body names the
// internal prefix, and that _state names the client's repository.
func TestClientsNeverSeeThePrefix(t *testing.T) {
	tr := newTestRegistry(t)
	auth := bearer(tr.org(t, "acme", store.ScopePush))
	prefix := NamespaceFor(mustOrg(t, tr, "acme").ID).Prefix()
	check := func(what string, r reply) {
		t.Helper()
		for k, vs := range r.header {
			for _, v := range vs {
				if strings.Contains(v, prefix) || strings.Contains(v, "o-") && k == "Location" {
					t.Fatalf("%s: header %s leaks the prefix: %s", what, k, v)
				}
			}
		}
		if strings.Contains(r.body, prefix) {
			t.Fatalf("%s: body leaks the prefix: %s", what, r.body)
		}
	}
	r := tr.do(t, call{method: "POST", path: "/v2/team/web/blobs/uploads/", auth: auth})
	check("start upload", r)
	loc, _ := url.Parse(r.header.Get("Location"))
	if !strings.HasPrefix(loc.Path, "/v2/team/web/blobs/uploads/") {
		t.Fatalf("Location %s", loc)
	}
	raw, _ := base64.URLEncoding.DecodeString(loc.Query().Get("_state"))
	if !strings.Contains(string(raw[32:]), `"Name":"team/web"`) {
		t.Fatalf("_state %s", raw[32:])
	}
	r = tr.do(t, call{method: "PATCH", path: loc.Path + "?" + loc.RawQuery, auth: auth, body: []byte("chunk one "), ctype: "application/octet-stream"})
	check("patch", r)
	if r.status != http.StatusAccepted {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	loc, _ = url.Parse(r.header.Get("Location"))
	r = tr.do(t, call{method: "GET", path: loc.Path, auth: auth})
	check("upload status", r)
	for _, tag := range []string{"a", "b", "c"} {
		tr.pushImage(t, auth, "team/web", tag, tag)
	}
	r = tr.do(t, call{method: "GET", path: "/v2/team/web/tags/list?n=2", auth: auth})
	check("tag list", r)
	if r.body != `{"name":"team/web","tags":["a","b"]}` || !strings.HasSuffix(r.header.Get("Link"), `/v2/team/web/tags/list?last=b&n=2>; rel="next"`) {
		t.Fatalf("tags: %s Link %q", r.body, r.header.Get("Link"))
	}
	r = tr.do(t, call{method: "GET", path: "/v2/team/web/manifests/nope", auth: auth})
	check("error", r)
	r = tr.do(t, call{method: "GET", path: "/v2/missing/tags/list", auth: auth})
	check("unknown repo", r)
	if r.status != http.StatusNotFound || !strings.Contains(r.body, "NAME_UNKNOWN") {
		t.Fatalf("unknown repo: %d %s", r.status, r.body)
	}
}

// TestRestartMidUpload: an upload begun before a restart resumes after it
// (the secret is in the database), and the blob is intact.
func TestRestartMidUpload(t *testing.T) {
	root := t.TempDir()
	start := func() (*Server, *httptest.Server) {
		s, err := New(context.Background(), Config{Root: root}, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		if err != nil {
			t.Fatal(err)
		}
		return s, httptest.NewServer(s.Handler())
	}
	s1, ts1 := start()
	_, secret, _ := s1.store.CreateToken(context.Background(), mustCreateOrg(t, s1, "acme"), store.NewTokenOpts{})
	tr1 := &testRegistry{Server: s1, ts: ts1, host: strings.TrimPrefix(ts1.URL, "http://")}
	auth := bearer(secret)
	loc := pathOf(tr1.startUpload(t, auth, "web"))
	r := tr1.do(t, call{method: "PATCH", path: loc, auth: auth, body: []byte("first half, "), ctype: "application/octet-stream"})
	if r.status != http.StatusAccepted {
		t.Fatalf("patch: %d", r.status)
	}
	loc = pathOf(r.header.Get("Location"))
	ts1.Close()
	_ = s1.Close()

	s2, ts2 := start()
	t.Cleanup(func() { ts2.Close(); _ = s2.Close() })
	tr2 := &testRegistry{Server: s2, ts: ts2, host: strings.TrimPrefix(ts2.URL, "http://")}
	whole := []byte("first half, second half")
	d := "sha256:" + sha256hex(whole)
	r = tr2.do(t, call{method: "PUT", path: loc + "&digest=" + d, auth: auth, body: []byte("second half"), ctype: "application/octet-stream"})
	if r.status != http.StatusCreated {
		t.Fatalf("resume after restart: %d %s", r.status, r.body)
	}
	got := tr2.do(t, call{method: "GET", path: "/v2/web/blobs/" + d, auth: auth})
	if got.status != 200 || got.body != string(whole) {
		t.Fatalf("blob after restart: %d %q", got.status, got.body)
	}
	// A corrupt completion (wrong digest) fails cleanly and stores nothing.
	loc = pathOf(tr2.startUpload(t, auth, "web"))
	bad := "sha256:" + sha256hex([]byte("not this"))
	if r := tr2.do(t, call{method: "PUT", path: loc + "&digest=" + bad, auth: auth, body: []byte("this"), ctype: "application/octet-stream"}); r.status != http.StatusBadRequest {
		t.Fatalf("bad digest: %d", r.status)
	}
	if r := tr2.do(t, call{method: "HEAD", path: "/v2/web/blobs/" + bad, auth: auth}); r.status != http.StatusNotFound {
		t.Fatalf("corrupt blob stored: %d", r.status)
	}
}

func mustCreateOrg(t *testing.T, s *Server, name string) string {
	t.Helper()
	if _, err := s.store.CreateOrg(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	return name
}

// pathOf strips scheme and host from a Location.
func pathOf(loc string) string {
	u, _ := url.Parse(loc)
	return u.RequestURI()
}
