package registry

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/ferryvm/ferry/internal/registry/store"
)

// multipartBody encodes fields as a multipart/form-data body.
func multipartBody(t *testing.T, fields url.Values) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for k, vs := range fields {
		for _, v := range vs {
			_ = mw.WriteField(k, v)
		}
	}
	_ = mw.Close()
	return b.Bytes(), mw.FormDataContentType()
}

// TestAttackFormBodyMountAcrossOrgs: distribution reads mount/from with
// FormValue, which also reads a form-encoded body. Org A names org B's
// internal repository there; it must neither get a 201 nor read B's blob.
func TestAttackFormBodyMountAcrossOrgs(t *testing.T) {
	tr := newTestRegistry(t)
	a := bearer(tr.org(t, "orga", store.ScopePush))
	b := bearer(tr.org(t, "orgb", store.ScopePush))
	secret := tr.pushBlob(t, b, "internal", []byte("org b's internal layer"))
	bRepo := NamespaceFor(mustOrg(t, tr, "orgb").ID).Prefix() + "internal"
	fields := url.Values{"mount": {secret.String()}, "from": {bRepo}}
	mp, mpType := multipartBody(t, fields)
	for name, c := range map[string]struct {
		query string
		body  []byte
		ctype string
	}{
		"urlencoded body":              {"", []byte(fields.Encode()), "application/x-www-form-urlencoded"},
		"urlencoded body, odd case":    {"", []byte(fields.Encode()), "Application/X-WWW-Form-URLEncoded; charset=utf-8"},
		"multipart body":               {"", mp, mpType},
		"query mount, body from":       {"?mount=" + secret.String(), []byte("from=" + url.QueryEscape(bRepo)), "application/x-www-form-urlencoded"},
		"duplicate from":               {"?mount=" + secret.String() + "&from=internal&from=" + url.QueryEscape(bRepo), nil, ""},
		"duplicate mount":              {"?mount=" + digest.FromString("x").String() + "&mount=" + secret.String() + "&from=internal", nil, ""},
		"encoded key":                  {"?%6dount=" + secret.String() + "&%66rom=" + url.QueryEscape(bRepo), nil, ""},
		"semicolon separator":          {"?mount=" + secret.String() + ";from=" + url.QueryEscape(bRepo), nil, ""},
		"from in body, octet-stream":   {"?mount=" + secret.String(), []byte("from=" + url.QueryEscape(bRepo)), "application/octet-stream"},
		"from in body, no type at all": {"?mount=" + secret.String(), []byte("from=" + url.QueryEscape(bRepo)), ""},
	} {
		t.Run(name, func(t *testing.T) {
			r := tr.do(t, call{method: "POST", path: "/v2/web/blobs/uploads/" + c.query, auth: a, body: c.body, ctype: c.ctype})
			if r.status == http.StatusCreated {
				t.Fatalf("cross-org mount through %s answered 201: %s", name, r.header.Get("Location"))
			}
			for _, m := range []string{"HEAD", "GET"} {
				if h := tr.do(t, call{method: m, path: "/v2/web/blobs/" + secret.String(), auth: a}); h.status != http.StatusNotFound {
					t.Fatalf("org A reads org B's blob after %s: %s %d %s", name, m, h.status, h.body)
				}
			}
		})
	}
}

// TestAttackFormBodyRefused: a form-encoded body is refused on every
// route distribution serves, with one line saying to use the query.
func TestAttackFormBodyRefused(t *testing.T) {
	tr := newTestRegistry(t)
	a := bearer(tr.org(t, "acme", store.ScopePush))
	loc := tr.startUpload(t, a, "web")
	for _, c := range []call{
		{method: "POST", path: "/v2/web/blobs/uploads/"},
		{method: "PATCH", path: loc},
		{method: "PUT", path: loc},
		{method: "PUT", path: "/v2/web/manifests/v1"},
		{method: "DELETE", path: "/v2/web/manifests/v1"},
	} {
		for _, ct := range []string{"application/x-www-form-urlencoded", "multipart/form-data; boundary=x", " application/x-www-form-urlencoded ; q=1"} {
			c.auth, c.ctype, c.body = a, ct, []byte("digest=sha256:"+strings.Repeat("0", 64))
			r := tr.do(t, c)
			if r.status != http.StatusUnsupportedMediaType || !strings.Contains(r.body, "UNSUPPORTED") || !strings.Contains(r.body, "query") {
				t.Fatalf("%s %s with %q: %d %s", c.method, c.path, ct, r.status, r.body)
			}
		}
	}
}

// TestAttackDuplicateParameters: a parameter distribution reads once is
// refused when given twice, whatever the values.
func TestAttackDuplicateParameters(t *testing.T) {
	tr := newTestRegistry(t)
	a := bearer(tr.org(t, "acme", store.ScopePush))
	loc := tr.startUpload(t, a, "web")
	u, _ := url.Parse(loc)
	st := u.Query().Get("_state")
	d := digest.FromString("x").String()
	for name, path := range map[string]string{
		"two digests on PUT": u.Path + "?" + url.Values{"_state": {st}, "digest": {d, d}}.Encode(),
		"two states":         u.Path + "?" + url.Values{"_state": {st, st}}.Encode(),
		"two mounts":         "/v2/web/blobs/uploads/?mount=" + d + "&mount=" + d,
		"two n on tags":      "/v2/web/tags/list?n=1&n=2",
		"two n on catalog":   "/v2/_catalog?n=1&n=2",
		"bad escape":         "/v2/web/blobs/uploads/?mount=%zz",
	} {
		t.Run(name, func(t *testing.T) {
			method := "PUT"
			switch {
			case strings.Contains(path, "uploads/?"):
				method = "POST"
			case strings.Contains(path, "tags") || strings.Contains(path, "catalog"):
				method = "GET"
			}
			r := tr.do(t, call{method: method, path: path, auth: a})
			if r.status != http.StatusBadRequest || !strings.Contains(r.body, "UNSUPPORTED") {
				t.Fatalf("%s %s: %d %s", method, path, r.status, r.body)
			}
		})
	}
}

// TestAttackDigestAliasPoisoning: a body digest= on an upload whose query
// names a sha512 digest once made the (global) alias table map that sha512
// to the empty blob, so a victim's later push of the real content answered
// 201 and then 404s. Aliases are verified against the bytes and are the
// org's own.
func TestAttackDigestAliasPoisoning(t *testing.T) {
	tr := newTestRegistry(t)
	a := bearer(tr.org(t, "attacker", store.ScopePush))
	v := bearer(tr.org(t, "victim", store.ScopePush))
	content := []byte("the victim's sha512-addressed layer")
	d512 := digest.SHA512.FromBytes(content)
	empty := digest.FromBytes(nil)

	// The attack, through the monolithic POST and through a session's PUT.
	tr.do(t, call{method: "POST", path: "/v2/web/blobs/uploads/?digest=" + d512.String(), auth: a,
		body: []byte("digest=" + empty.String()), ctype: "application/x-www-form-urlencoded"})
	loc := tr.startUpload(t, a, "web")
	u, _ := url.Parse(loc)
	q := u.Query()
	q.Set("digest", d512.String())
	tr.do(t, call{method: "PUT", path: u.Path + "?" + q.Encode(), auth: a,
		body: []byte("digest=" + empty.String()), ctype: "application/x-www-form-urlencoded"})
	// Or by pushing other bytes under the victim's digest.
	tr.do(t, call{method: "POST", path: "/v2/web/blobs/uploads/?digest=" + d512.String(), auth: a,
		body: []byte("not the content"), ctype: "application/octet-stream"})
	if r := tr.do(t, call{method: "HEAD", path: "/v2/web/blobs/" + d512.String(), auth: a}); r.status != http.StatusNotFound {
		t.Fatalf("attacker's poisoned alias resolves: HEAD %d", r.status)
	}

	// The victim pushes the real content and reads it back by its sha512.
	r := tr.do(t, call{method: "POST", path: "/v2/app/blobs/uploads/?digest=" + d512.String(), auth: v, body: content, ctype: "application/octet-stream"})
	if r.status != http.StatusCreated || r.header.Get("Docker-Content-Digest") != d512.String() {
		t.Fatalf("victim's push: %d %s %s", r.status, r.header.Get("Docker-Content-Digest"), r.body)
	}
	g := tr.do(t, call{method: "GET", path: "/v2/app/blobs/" + d512.String(), auth: v})
	if g.status != http.StatusOK || g.body != string(content) {
		t.Fatalf("victim reads its blob by sha512: %d %q", g.status, g.body)
	}
	// The victim's alias is the victim's: the attacker learns nothing from it.
	if r := tr.do(t, call{method: "GET", path: "/v2/web/blobs/" + d512.String(), auth: a}); r.status != http.StatusNotFound || !strings.Contains(r.body, d512.String()) {
		t.Fatalf("attacker GET by the victim's sha512: %d %s", r.status, r.body)
	}
}
