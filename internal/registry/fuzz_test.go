package registry

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/ferryvm/ferry/internal/registry/auth"
	"github.com/ferryvm/ferry/internal/registry/store"
)

// FuzzParseRoute: a parsed route always re-assembles into its path, and a
// name that passes validation maps into the namespace and back unchanged.
func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{"/v2/", "/v2/a/b/manifests/x", "/v2/a/blobs/uploads/", "/v2/x/blobs/uploads/u/blobs/sha256:1", "/v2/../tags/list", "/v2//tags/list"} {
		f.Add(s)
	}
	ns := NamespaceFor("0123456789abcdef")
	f.Fuzz(func(t *testing.T, path string) {
		rt := parseRoute(path)
		if rt.repo == "" {
			return
		}
		if "/v2/"+rt.repo+rt.rest != path {
			t.Fatalf("%q parsed as %+v", path, rt)
		}
		internal, ok := ns.Internal(rt.repo)
		if !ok {
			return
		}
		if !strings.HasPrefix(internal, ns.Prefix()) || strings.Contains(internal, "..") || strings.Contains(internal, "//") {
			t.Fatalf("%q maps to %q", rt.repo, internal)
		}
		if back, ok := ns.External(internal); !ok || back != rt.repo {
			t.Fatalf("round trip %q -> %q -> %q", rt.repo, internal, back)
		}
	})
}

// FuzzUploadState: only states sealed with the key open, and what opens is
// what was sealed.
func FuzzUploadState(f *testing.F) {
	k := stateKey("secret")
	f.Add(k.pack(uploadState{Name: "web", UUID: "u", Offset: 3}))
	f.Add("")
	f.Add("AAAA")
	f.Fuzz(func(t *testing.T, token string) {
		st, err := k.unpack(token)
		if err != nil {
			return
		}
		again, err := k.unpack(k.pack(st))
		if err != nil || again.Name != st.Name || again.UUID != st.UUID || again.Offset != st.Offset || !again.StartedAt.Equal(st.StartedAt) {
			t.Fatalf("state does not round trip: %+v vs %+v (%v)", st, again, err)
		}
		if _, err := stateKey("other").unpack(token); err == nil {
			t.Fatal("state opens under another key")
		}
	})
}

// FuzzScopes: parsing never panics and grants stay within the token.
func FuzzScopes(f *testing.F) {
	f.Add("repository:web:pull,push registry:catalog:*")
	f.Add("repository:a:b:c:*")
	f.Fuzz(func(t *testing.T, s string) {
		for _, a := range auth.ParseScopes([]string{s}) {
			_ = a.String()
		}
	})
}

// seen is what distribution was handed for one request.
type seen struct {
	path, rawQuery string
	form, postForm url.Values
	multipart      int
	formValue      map[string]string
}

// appSpy sits where distribution's app is and records what it receives,
// reading parameters the way distribution's handlers do (FormValue).
type appSpy struct {
	next http.Handler
	mu   sync.Mutex
	got  []seen
}

func (a *appSpy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sn := seen{path: r.URL.Path, rawQuery: r.URL.RawQuery, formValue: map[string]string{}}
	for _, k := range []string{"mount", "from", "digest", "_state", "n", "last"} {
		sn.formValue[k] = r.FormValue(k)
	}
	sn.form, sn.postForm = r.Form, r.PostForm
	if r.MultipartForm != nil {
		sn.multipart = len(r.MultipartForm.Value) + len(r.MultipartForm.File)
	}
	a.mu.Lock()
	a.got = append(a.got, sn)
	a.mu.Unlock()
	a.next.ServeHTTP(w, r)
}

func (a *appSpy) take() []seen {
	a.mu.Lock()
	defer a.mu.Unlock()
	got := a.got
	a.got = nil
	return got
}

// FuzzMiddlewareParams sends org A's requests with fuzzed queries (encoded
// and duplicated parameters, semicolons), bodies (form-encoded, multipart,
// raw) and content types to the real middleware and distribution, and
// checks what distribution is handed: parameters only from the query, each
// once, only those the route takes, every name and upload state inside A's
// namespace; and that A never reaches org B's blob.
func FuzzMiddlewareParams(f *testing.F) {
	tr := newTestRegistry(f)
	a := bearer(tr.org(f, "orga", store.ScopePush))
	b := bearer(tr.org(f, "orgb", store.ScopePush))
	secret := tr.pushBlob(f, b, "internal", []byte("org b's internal layer"))
	nsA := NamespaceFor(mustOrg(f, tr, "orga").ID)
	bRepo := NamespaceFor(mustOrg(f, tr, "orgb").ID).Prefix() + "internal"
	spy := &appSpy{next: tr.app}
	tr.app = spy

	paths := []string{"/v2/web/blobs/uploads/", "/v2/web/blobs/uploads/%s", "/v2/web/manifests/v1",
		"/v2/web/blobs/" + secret.String(), "/v2/web/tags/list", "/v2/_catalog", "/v2/web/referrers/" + secret.String()}
	methods := []string{"POST", "PATCH", "PUT", "GET", "HEAD", "DELETE"}
	attack := url.Values{"mount": {secret.String()}, "from": {bRepo}}.Encode()
	for _, s := range []struct {
		m, p       uint8
		query      string
		body       string
		ctype      string
		secondType bool
	}{
		{0, 0, "", attack, "application/x-www-form-urlencoded", false},
		{0, 0, "mount=" + secret.String(), "from=" + bRepo, "application/x-www-form-urlencoded; charset=utf-8", false},
		{0, 0, "mount=" + secret.String() + "&from=internal&from=" + bRepo, "", "", false},
		{0, 0, "%6dount=" + secret.String() + "&%66rom=" + url.QueryEscape(bRepo), "", "", false},
		{0, 0, "mount=" + secret.String() + ";from=" + bRepo, "", "", false},
		{0, 0, "mount=" + secret.String() + "&from=..%2F" + url.QueryEscape(bRepo), "", "", false},
		{2, 1, "digest=sha512:00&digest=" + secret.String(), "digest=" + secret.String(), "application/octet-stream", true},
		{1, 1, "_state=x&_state=y", "--b\r\nContent-Disposition: form-data; name=\"mount\"\r\n\r\n" + secret.String() + "\r\n--b--\r\n", "multipart/form-data; boundary=b", false},
		{3, 4, "n=1&n=2&last=a", "", "", false},
		{0, 0, "digest=" + secret.String(), "layer bytes", "application/octet-stream", false},
	} {
		f.Add(s.m, s.p, s.query, []byte(s.body), s.ctype, s.secondType)
	}
	// A live upload session of A, for the chunk routes.
	sessionLoc := tr.startUpload(f, a, "web")
	sessionURL, _ := url.Parse(sessionLoc)
	sessionID := strings.TrimPrefix(sessionURL.Path, "/v2/web/blobs/uploads/")
	sessionState := sessionURL.Query().Get("_state")
	allowed := map[string]bool{}
	for _, ks := range routeParams {
		for _, k := range ks {
			allowed[k] = true
		}
	}

	f.Fuzz(func(t *testing.T, m, p uint8, query string, body []byte, ctype string, secondType bool) {
		spy.take() // what earlier probes left
		method := methods[int(m)%len(methods)]
		path := paths[int(p)%len(paths)]
		if strings.Contains(path, "%s") {
			path = fmt.Sprintf(path, sessionID)
			if !strings.Contains(query, "_state") {
				query += "&_state=" + url.QueryEscape(sessionState)
			}
		}
		req, err := http.NewRequest(method, tr.ts.URL+path, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.URL.RawQuery = query
		req.Header.Set("Authorization", a)
		if ctype != "" {
			req.Header["Content-Type"] = []string{ctype}
			if secondType {
				req.Header["Content-Type"] = append(req.Header["Content-Type"], "application/x-www-form-urlencoded")
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return // a request Go's client or server will not carry
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		for _, sn := range spy.take() {
			if isFormType(ctype) || (ctype != "" && secondType) {
				t.Fatalf("a request with Content-Type %q reached distribution: %+v", ctype, sn)
			}
			if !strings.HasPrefix(sn.path, "/v2/"+nsA.Prefix()) {
				t.Fatalf("distribution got a path outside A's namespace: %q", sn.path)
			}
			q, err := url.ParseQuery(sn.rawQuery)
			if err != nil {
				t.Fatalf("distribution got a query that does not parse: %q", sn.rawQuery)
			}
			if len(sn.postForm) != 0 || sn.multipart != 0 {
				t.Fatalf("distribution read parameters from the body: %v %d", sn.postForm, sn.multipart)
			}
			for k, vs := range q {
				if len(vs) != 1 || !allowed[k] {
					t.Fatalf("distribution got parameter %q = %q", k, vs)
				}
			}
			for k, v := range sn.formValue {
				if v != q.Get(k) || len(sn.form[k]) > 1 {
					t.Fatalf("FormValue(%q) = %q but the query says %q", k, v, q.Get(k))
				}
			}
			if from := q.Get("from"); from != "" && !strings.HasPrefix(from, nsA.Prefix()) {
				t.Fatalf("distribution got a mount from outside A's namespace: %q", from)
			}
			if st := q.Get("_state"); st != "" {
				if us, err := tr.key.unpack(st); err == nil && !strings.HasPrefix(us.Name, nsA.Prefix()) {
					t.Fatalf("distribution got an upload state for %q", us.Name)
				}
			}
		}
		head, _ := http.NewRequest("HEAD", tr.ts.URL+"/v2/web/blobs/"+secret.String(), nil)
		head.Header.Set("Authorization", a)
		if hr, err := http.DefaultClient.Do(head); err == nil {
			hr.Body.Close()
			if hr.StatusCode != http.StatusNotFound {
				t.Fatalf("after %s %s?%s (%q, %q): org A reads org B's blob (HEAD %d)", method, path, query, ctype, body, hr.StatusCode)
			}
		}
	})
}
