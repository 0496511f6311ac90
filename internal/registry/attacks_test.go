package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferryvm/ferry/internal/registry/auth"
	"github.com/ferryvm/ferry/internal/registry/store"
)

// jwtFor runs the token flow: basic auth at /token with scopes.
func (tr *testRegistry) jwtFor(t *testing.T, user, secret string, scopes ...string) (int, string) {
	t.Helper()
	q := url.Values{"service": {"ferry-registry"}, "scope": scopes}
	req, _ := http.NewRequest("GET", tr.ts.URL+"/token?"+q.Encode(), nil)
	req.SetBasicAuth(user, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Token string `json:"token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Token
}

// jwtClaims decodes (without verifying) a JWT's claims.
func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestAttackWrongExpiredRevokedToken(t *testing.T) {
	now := time.Now()
	tr := newTestRegistry(t)
	ctx := context.Background()
	good := tr.org(t, "acme", store.ScopePush)
	_, expired, err := tr.store.CreateToken(ctx, "acme", store.NewTokenOpts{TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	revokedTok, revoked, _ := tr.store.CreateToken(ctx, "acme", store.NewTokenOpts{})
	_, jwtBefore := tr.jwtFor(t, "acme", revoked, "repository:web:pull,push")
	if err := tr.store.RevokeToken(ctx, revokedTok.ID); err != nil {
		t.Fatal(err)
	}
	for time.Since(now) < 1100*time.Millisecond {
		time.Sleep(50 * time.Millisecond)
	}
	forged := good[:len(good)-4] + "0000"
	cases := map[string]string{
		"no credentials":             "",
		"wrong token":                bearer(forged),
		"garbage bearer":             "Bearer not-a-token",
		"expired token":              bearer(expired),
		"revoked token":              bearer(revoked),
		"jwt of a revoked token":     bearer(jwtBefore),
		"basic with wrong org":       "Basic " + base64.StdEncoding.EncodeToString([]byte("other:"+good)),
		"basic with expired token":   "Basic " + base64.StdEncoding.EncodeToString([]byte("acme:"+expired)),
		"jwt signed by someone else": bearer(forgeJWT(t)),
	}
	for name, auth := range cases {
		t.Run(name, func(t *testing.T) {
			r := tr.do(t, call{method: "POST", path: "/v2/web/blobs/uploads/", auth: auth})
			if r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer realm=") {
				t.Fatalf("got %d %q, want 401 with a Bearer challenge", r.status, r.header.Get("WWW-Authenticate"))
			}
			if st, _ := tr.jwtFor(t, "acme", strings.TrimPrefix(auth, "Bearer ")); auth != "" && strings.HasPrefix(auth, "Bearer ferry_") && st != http.StatusUnauthorized {
				t.Fatalf("token endpoint answered %d for a bad token", st)
			}
		})
	}
	// Nothing was done: no upload sessions exist under the org.
	repos, _ := tr.store.Repos(ctx, mustOrg(t, tr, "acme").ID, "", 10)
	if len(repos) != 0 {
		t.Fatalf("repos after refused requests: %v", repos)
	}
}

func forgeJWT(t *testing.T) string {
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	claims := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"ferry-registry","aud":"ferry-registry","exp":9999999999,"org_id":"x","tid":"y","access":[{"type":"repository","name":"web","actions":["push","pull"]}]}`))
	return header + "." + claims + "." + base64.RawURLEncoding.EncodeToString([]byte("not-the-signature-at-all-000000000"))
}

func mustOrg(t testing.TB, tr *testRegistry, name string) store.Org {
	t.Helper()
	o, err := tr.store.Org(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestAttackTokenOfOrgAOnOrgBNames(t *testing.T) {
	tr := newTestRegistry(t)
	a := bearer(tr.org(t, "orga", store.ScopePush))
	b := bearer(tr.org(t, "orgb", store.ScopePush))
	tr.pushImage(t, b, "web", "v1", "b-secret")
	// A asks for B's repository by the same name: it only ever reaches its own.
	if r := tr.do(t, call{method: "GET", path: "/v2/web/manifests/v1", auth: a, accept: "application/vnd.oci.image.manifest.v1+json"}); r.status != http.StatusNotFound {
		t.Fatalf("org A read org B's web:v1: %d %s", r.status, r.body)
	}
	// Naming B's internal prefix stays inside A's namespace.
	bPrefix := NamespaceFor(mustOrg(t, tr, "orgb").ID).Prefix()
	if r := tr.do(t, call{method: "GET", path: "/v2/" + bPrefix + "web/manifests/v1", auth: a, accept: "application/vnd.oci.image.manifest.v1+json"}); r.status != http.StatusNotFound {
		t.Fatalf("org A reached org B through its prefix: %d %s", r.status, r.body)
	}
	// B's token presented with A's name at the token endpoint: refused.
	if st, _ := tr.jwtFor(t, "orga", strings.TrimPrefix(b, "Bearer "), "repository:web:pull"); st != http.StatusUnauthorized {
		t.Fatalf("token endpoint accepted org B's token as org A: %d", st)
	}
}

func TestAttackScopeEscalation(t *testing.T) {
	tr := newTestRegistry(t)
	pull := tr.org(t, "acme", store.ScopePull)
	st, tok := tr.jwtFor(t, "acme", pull, "repository:web:pull,push,delete", "repository:../etc:pull", "registry:catalog:*", "repository:web:*")
	if st != http.StatusOK {
		t.Fatalf("token endpoint: %d", st)
	}
	raw, _ := json.Marshal(jwtClaims(t, tok)["access"])
	var granted []auth.Access
	_ = json.Unmarshal(raw, &granted)
	access, _ := json.Marshal(granted)
	want := `[{"type":"repository","name":"web","actions":["pull"]},{"type":"registry","name":"catalog","actions":["*"]}]`
	if string(access) != want {
		t.Fatalf("granted %s, want %s", access, want)
	}
	if r := tr.do(t, call{method: "POST", path: "/v2/web/blobs/uploads/", auth: bearer(tok)}); r.status != http.StatusUnauthorized ||
		!strings.Contains(r.header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Fatalf("push with a pull-only JWT: %d %q", r.status, r.header.Get("WWW-Authenticate"))
	}
	if r := tr.do(t, call{method: "POST", path: "/v2/web/blobs/uploads/", auth: bearer(pull)}); r.status != http.StatusUnauthorized {
		t.Fatalf("push with a pull-only org token: %d", r.status)
	}
	// A JWT scoped to one repository does not open another.
	push := tr.org(t, "acme", store.ScopePush)
	_, webTok := tr.jwtFor(t, "acme", push, "repository:web:pull,push")
	if r := tr.do(t, call{method: "GET", path: "/v2/other/tags/list", auth: bearer(webTok)}); r.status != http.StatusUnauthorized {
		t.Fatalf("JWT for web used on other: %d", r.status)
	}
}

func TestAttackNamesLeavingTheOrg(t *testing.T) {
	tr := newTestRegistry(t)
	auth := bearer(tr.org(t, "acme", store.ScopePush))
	cases := map[string]string{
		"dot dot":              "/v2/../o-0000000000000000/web/tags/list",
		"dot dot inside":       "/v2/web/../../x/tags/list",
		"encoded dot dot":      "/v2/%2e%2e/%2e%2e/x/tags/list",
		"encoded slash dotdot": "/v2/web%2F..%2F..%2Fx/tags/list",
		"uppercase":            "/v2/Web/tags/list",
		"unicode lookalike":    "/v2/w%D0%B5b/tags/list", // Cyrillic е
		"fullwidth slash":      "/v2/a%EF%BC%8Fb/tags/list",
		"leading slash":        "/v2//web/tags/list",
		"trailing dot":         "/v2/web./tags/list",
		"null byte":            "/v2/web%00/tags/list",
		"too long":             "/v2/" + strings.Repeat("a", 250) + "/tags/list",
	}
	for name, path := range cases {
		t.Run(name, func(t *testing.T) {
			r := tr.do(t, call{method: "GET", path: path, auth: auth})
			if r.status != http.StatusBadRequest && r.status != http.StatusNotFound {
				t.Fatalf("%s: %d %s", path, r.status, r.body)
			}
			if r.status == http.StatusBadRequest && !strings.Contains(r.body, "NAME_INVALID") {
				t.Fatalf("%s: %d %s", path, r.status, r.body)
			}
		})
	}
	// An encoded slash is just a slash: it names a repository inside the org.
	tr.pushImage(t, auth, "team/web", "v1", "x")
	if r := tr.do(t, call{method: "GET", path: "/v2/team%2Fweb/tags/list", auth: auth}); r.status != http.StatusOK || !strings.Contains(r.body, `"name":"team/web"`) {
		t.Fatalf("encoded slash: %d %s", r.status, r.body)
	}
}

// startUpload opens an upload session and returns its Location.
func (tr *testRegistry) startUpload(t testing.TB, auth, repo string) string {
	t.Helper()
	r := tr.do(t, call{method: "POST", path: "/v2/" + repo + "/blobs/uploads/", auth: auth})
	if r.status != http.StatusAccepted {
		t.Fatalf("start upload: %d %s", r.status, r.body)
	}
	return r.header.Get("Location")
}

func TestAttackUploadStateTamperingAndReplay(t *testing.T) {
	tr := newTestRegistry(t)
	a := bearer(tr.org(t, "orga", store.ScopePush))
	b := bearer(tr.org(t, "orgb", store.ScopePush))
	loc := tr.startUpload(t, a, "web")
	u, _ := url.Parse(loc)
	if strings.Contains(loc, "o-") {
		t.Fatalf("Location leaks the internal prefix: %s", loc)
	}
	state := u.Query().Get("_state")
	raw, _ := base64.URLEncoding.DecodeString(state)
	if strings.Contains(string(raw), "o-") || !strings.Contains(string(raw), `"Name":"web"`) {
		t.Fatalf("_state carries %q", raw[32:])
	}
	blob := []byte("some bytes")
	d := digest.FromBytes(blob)
	put := func(auth, path, state string) reply {
		q := url.Values{"_state": {state}, "digest": {d.String()}}
		return tr.do(t, call{method: "PUT", path: path + "?" + q.Encode(), auth: auth, body: blob, ctype: "application/octet-stream"})
	}
	// Tampered: flip the name inside the signed JSON.
	tampered := append([]byte{}, raw...)
	copy(tampered[len(tampered)-len(`"Name":"web"`):], `"Name":"app"`) // harmless if not found; signature breaks anyway
	tampered[40] ^= 1
	t.Run("tampered state", func(t *testing.T) {
		if r := put(a, u.Path, base64.URLEncoding.EncodeToString(tampered)); r.status < 400 {
			t.Fatalf("tampered _state accepted: %d", r.status)
		}
	})
	t.Run("replay on another repository", func(t *testing.T) {
		other := strings.Replace(u.Path, "/v2/web/", "/v2/app/", 1)
		if r := put(a, other, state); r.status < 400 {
			t.Fatalf("_state of web accepted on app: %d", r.status)
		}
	})
	t.Run("replay by another org", func(t *testing.T) {
		if r := put(b, u.Path, state); r.status < 400 {
			t.Fatalf("org B completed org A's upload: %d", r.status)
		}
	})
	t.Run("replay on another upload", func(t *testing.T) {
		loc2 := tr.startUpload(t, a, "web")
		u2, _ := url.Parse(loc2)
		if r := put(a, u2.Path, state); r.status < 400 {
			t.Fatalf("_state of one upload accepted on another: %d", r.status)
		}
	})
	t.Run("genuine state still works", func(t *testing.T) {
		if r := put(a, u.Path, state); r.status != http.StatusCreated {
			t.Fatalf("genuine upload: %d %s", r.status, r.body)
		}
	})
}

func TestAttackMountAcrossOrgs(t *testing.T) {
	tr := newTestRegistry(t)
	a := bearer(tr.org(t, "orga", store.ScopePush))
	b := bearer(tr.org(t, "orgb", store.ScopePush))
	secret := tr.pushBlob(t, b, "private", []byte("org b's secret layer"))
	bPrefix := NamespaceFor(mustOrg(t, tr, "orgb").ID).Prefix()
	for name, from := range map[string]string{
		"same name":          "private",
		"internal prefix":    bPrefix + "private",
		"dot dot":            "../" + bPrefix + "private",
		"no from (anywhere)": "",
	} {
		t.Run(name, func(t *testing.T) {
			q := url.Values{"mount": {secret.String()}}
			if from != "" {
				q.Set("from", from)
			}
			r := tr.do(t, call{method: "POST", path: "/v2/web/blobs/uploads/?" + q.Encode(), auth: a})
			if r.status != http.StatusAccepted {
				t.Fatalf("cross-org mount answered %d %s, want a plain 202 upload", r.status, r.body)
			}
			if h := tr.do(t, call{method: "HEAD", path: "/v2/web/blobs/" + secret.String(), auth: a}); h.status != http.StatusNotFound {
				t.Fatalf("blob linked into org A: HEAD %d", h.status)
			}
		})
	}
	// Within one org a mount is honoured.
	own := tr.pushBlob(t, a, "base", []byte("org a's layer"))
	q := url.Values{"mount": {own.String()}, "from": {"base"}}
	if r := tr.do(t, call{method: "POST", path: "/v2/web/blobs/uploads/?" + q.Encode(), auth: a}); r.status != http.StatusCreated || strings.Contains(r.header.Get("Location"), "o-") {
		t.Fatalf("same-org mount: %d %s", r.status, r.header.Get("Location"))
	}
	// So is an anonymous one, found in the org's own repositories.
	own2 := tr.pushBlob(t, a, "base", []byte("another layer of org a"))
	if r := tr.do(t, call{method: "POST", path: "/v2/app/blobs/uploads/?mount=" + own2.String(), auth: a}); r.status != http.StatusCreated {
		t.Fatalf("same-org anonymous mount: %d %s", r.status, r.body)
	}
}

func TestAttackHeadOfAnotherOrgsDigest(t *testing.T) {
	tr := newTestRegistry(t)
	a := bearer(tr.org(t, "orga", store.ScopePush))
	b := bearer(tr.org(t, "orgb", store.ScopePush))
	mdig, ldig := tr.pushImage(t, b, "web", "v1", "only b")
	tr.pushImage(t, a, "web", "v1", "a's own")
	for _, path := range []string{
		"/v2/web/blobs/" + ldig.String(),
		"/v2/web/manifests/" + mdig.String(),
		"/v2/anything/blobs/" + ldig.String(),
	} {
		for _, m := range []string{"HEAD", "GET"} {
			if r := tr.do(t, call{method: m, path: path, auth: a, accept: "application/vnd.oci.image.manifest.v1+json"}); r.status != http.StatusNotFound {
				t.Fatalf("%s %s as org A: %d (existence oracle)", m, path, r.status)
			}
		}
	}
}

func TestAttackManifestDigestMismatch(t *testing.T) {
	tr := newTestRegistry(t)
	a := bearer(tr.org(t, "acme", store.ScopePush))
	_, _ = tr.pushImage(t, a, "web", "v1", "x")
	cfg := tr.pushBlob(t, a, "web", []byte("{}"))
	m := manifestJSON(cfg, 2, cfg, 2)
	wrong := digest.FromString("something else")
	for _, d := range []string{wrong.String(), digest.SHA512.FromString("else").String()} {
		r := tr.do(t, call{method: "PUT", path: "/v2/web/manifests/" + d, auth: a, body: m, ctype: "application/vnd.oci.image.manifest.v1+json"})
		if r.status != http.StatusBadRequest || !strings.Contains(r.body, "DIGEST_INVALID") {
			t.Fatalf("PUT by mismatched digest %s: %d %s", d, r.status, r.body)
		}
	}
}

func TestAttackManifestReferencingMissingBlobs(t *testing.T) {
	tr := newTestRegistry(t)
	a := bearer(tr.org(t, "acme", store.ScopePush))
	b := bearer(tr.org(t, "other", store.ScopePush))
	theirs := tr.pushBlob(t, b, "web", []byte("other org's config"))
	missing := digest.FromString("never uploaded")
	for name, m := range map[string][]byte{
		"missing blobs":             manifestJSON(missing, 10, missing, 10),
		"another org's blob":        manifestJSON(theirs, 18, theirs, 18),
		"index of missing manifest": []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + missing.String() + `","size":10}]}`),
	} {
		t.Run(name, func(t *testing.T) {
			ct := "application/vnd.oci.image.manifest.v1+json"
			if strings.Contains(name, "index") {
				ct = "application/vnd.oci.image.index.v1+json"
			}
			r := tr.do(t, call{method: "PUT", path: "/v2/web/manifests/v1", auth: a, body: m, ctype: ct})
			if r.status != http.StatusBadRequest || !strings.Contains(r.body, "BLOB_UNKNOWN") {
				t.Fatalf("%d %s", r.status, r.body)
			}
		})
	}
}

func TestAttackOversizedManifest(t *testing.T) {
	tr := newTestRegistry(t)
	a := bearer(tr.org(t, "acme", store.ScopePush))
	big := []byte(`{"schemaVersion":2,"annotations":{"x":"` + strings.Repeat("a", maxManifestSize) + `"}}`)
	r := tr.do(t, call{method: "PUT", path: "/v2/web/manifests/v1", auth: a, body: big, ctype: "application/vnd.oci.image.manifest.v1+json"})
	if r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized manifest: %d %s", r.status, r.body)
	}
}

func TestAttackCatalogPaginationAbuse(t *testing.T) {
	tr := newTestRegistry(t)
	a := bearer(tr.org(t, "orga", store.ScopePush))
	b := bearer(tr.org(t, "orgb", store.ScopePush))
	for _, n := range []string{"a1", "a2", "a3"} {
		tr.pushImage(t, a, n, "v1", n)
	}
	tr.pushImage(t, b, "b-only", "v1", "b")
	for name, c := range map[string]struct {
		q      string
		status int
		want   string
	}{
		"negative n":        {"?n=-1", 400, "PAGINATION_NUMBER_INVALID"},
		"non-numeric n":     {"?n=abc", 400, "PAGINATION_NUMBER_INVALID"},
		"overflowing n":     {"?n=99999999999999999999999", 400, "PAGINATION_NUMBER_INVALID"},
		"huge n is capped":  {"?n=2000000000", 200, `{"repositories":["a1","a2","a3"]}`},
		"zero":              {"?n=0", 200, `{"repositories":[]}`},
		"page":              {"?n=2", 200, `{"repositories":["a1","a2"]}`},
		"after last":        {"?n=2&last=a2", 200, `{"repositories":["a3"]}`},
		"last of other org": {"?last=b", 200, `{"repositories":[]}`},
	} {
		t.Run(name, func(t *testing.T) {
			r := tr.do(t, call{method: "GET", path: "/v2/_catalog" + c.q, auth: a})
			if r.status != c.status || !strings.Contains(r.body, c.want) {
				t.Fatalf("%s: %d %s", c.q, r.status, r.body)
			}
			if strings.Contains(r.body, "b-only") || strings.Contains(r.header.Get("Link"), "o-") {
				t.Fatalf("catalog leaks: %s %s", r.body, r.header.Get("Link"))
			}
		})
	}
	r := tr.do(t, call{method: "GET", path: "/v2/_catalog?n=2", auth: a})
	if got := r.header.Get("Link"); got != `</v2/_catalog?last=a2&n=2>; rel="next"` {
		t.Fatalf("Link %q", got)
	}
}

// TestAttackRevocationReachesBusyClient: a client that keeps using a JWT
// (so its token sits in the server's cache) is cut off within the cache TTL
// of a revocation.
func TestAttackRevocationReachesBusyClient(t *testing.T) {
	tr := newTestRegistry(t)
	ctx := context.Background()
	tok, secret, _ := tr.store.CreateToken(ctx, mustOrgName(t, tr, "acme"), store.NewTokenOpts{})
	_, jwt := tr.jwtFor(t, "acme", secret, "repository:web:pull,push")
	for _, auth := range []string{bearer(jwt), bearer(secret)} {
		if r := tr.do(t, call{method: "POST", path: "/v2/web/blobs/uploads/", auth: auth}); r.status != http.StatusAccepted {
			t.Fatalf("before revocation: %d", r.status)
		}
	}
	if err := tr.store.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(tokenCacheTTL + 5*time.Second) // generous: a loaded machine
	for _, auth := range []string{bearer(jwt), bearer(secret)} {
		for {
			r := tr.do(t, call{method: "POST", path: "/v2/web/blobs/uploads/", auth: auth})
			if r.status == http.StatusUnauthorized {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("revoked token still works after %s: %d", tokenCacheTTL, r.status)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func mustOrgName(t *testing.T, tr *testRegistry, name string) string {
	t.Helper()
	if _, err := tr.store.CreateOrg(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	return name
}
