package registry

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryvm/ferry/internal/registry/store"
)

// answer is a reply reduced to what must not depend on another org: the
// status, the body and the headers, with the digest asked about and the
// values that differ on every request (dates, upload ids) blanked.
func answer(r reply, d string) string {
	var b strings.Builder
	b.WriteString(http.StatusText(r.status) + "\n")
	keys := make([]string, 0, len(r.header))
	for k := range r.header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := strings.Join(r.header[k], ",")
		switch k {
		case "Date", "Docker-Upload-Uuid", "Location", "Content-Length":
			v = "…"
		}
		b.WriteString(k + ": " + strings.ReplaceAll(v, d, "{d}") + "\n")
	}
	b.WriteString(strings.ReplaceAll(r.body, d, "{d}"))
	return b.String()
}

// TestAttackOraclesAnswerAlike: whether another org holds a digest (a
// layer, a sha512-addressed blob, a manifest) changes nothing org A can see
// on any route: blob and manifest HEAD/GET/DELETE, named and anonymous
// mounts, a manifest referring to the digest, referrers, tag lists.
func TestAttackOraclesAnswerAlike(t *testing.T) {
	tr := newTestRegistry(t)
	a := bearer(tr.org(t, "orga", store.ScopePush))
	b := bearer(tr.org(t, "orgb", store.ScopePush))
	tr.pushImage(t, a, "web", "v1", "a's own image") // A's web exists
	mdig, layer := tr.pushImage(t, b, "web", "v1", "b's image")
	content := []byte("b's sha512 blob")
	s512 := digest.SHA512.FromBytes(content)
	if r := tr.do(t, call{method: "POST", path: "/v2/web/blobs/uploads/?digest=" + s512.String(), auth: b, body: content, ctype: "application/octet-stream"}); r.status != http.StatusCreated {
		t.Fatalf("b's sha512 push: %d %s", r.status, r.body)
	}
	sub := manifestJSON(layer, 10, layer, 10)
	sub = []byte(strings.Replace(string(sub), `"layers"`, `"subject":{"mediaType":"`+v1.MediaTypeImageManifest+`","digest":"`+mdig.String()+`","size":2},"layers"`, 1))
	if r := tr.do(t, call{method: "PUT", path: "/v2/web/manifests/sig", auth: b, body: sub, ctype: v1.MediaTypeImageManifest}); r.status != http.StatusCreated {
		t.Fatalf("b's referrer: %d %s", r.status, r.body)
	}
	probes := map[string]func(d string) call{
		"HEAD blob":         func(d string) call { return call{method: "HEAD", path: "/v2/web/blobs/" + d} },
		"GET blob":          func(d string) call { return call{method: "GET", path: "/v2/web/blobs/" + d} },
		"DELETE blob":       func(d string) call { return call{method: "DELETE", path: "/v2/web/blobs/" + d} },
		"GET blob, no repo": func(d string) call { return call{method: "GET", path: "/v2/nothing/blobs/" + d} },
		"HEAD manifest":     func(d string) call { return call{method: "HEAD", path: "/v2/web/manifests/" + d} },
		"GET manifest":      func(d string) call { return call{method: "GET", path: "/v2/web/manifests/" + d} },
		"DELETE manifest":   func(d string) call { return call{method: "DELETE", path: "/v2/web/manifests/" + d} },
		"mount from web": func(d string) call {
			return call{method: "POST", path: "/v2/app/blobs/uploads/?mount=" + d + "&from=web"}
		},
		"anonymous mount": func(d string) call { return call{method: "POST", path: "/v2/app/blobs/uploads/?mount=" + d} },
		"referrers":       func(d string) call { return call{method: "GET", path: "/v2/web/referrers/" + d} },
		"manifest naming it": func(d string) call {
			return call{method: "PUT", path: "/v2/web/manifests/probe", body: []byte(strings.ReplaceAll(string(manifestJSON(digest.Digest(d), 10, digest.Digest(d), 10)), `"size":10`, `"size":10`)), ctype: v1.MediaTypeImageManifest}
		},
		"index naming it": func(d string) call {
			return call{method: "PUT", path: "/v2/web/manifests/probe-index", ctype: v1.MediaTypeImageIndex,
				body: []byte(`{"schemaVersion":2,"mediaType":"` + v1.MediaTypeImageIndex + `","manifests":[{"mediaType":"` + v1.MediaTypeImageManifest + `","digest":"` + d + `","size":2}]}`)}
		},
	}
	held := map[string]string{
		"b's layer":          layer.String(),
		"b's sha512 blob":    s512.String(),
		"b's manifest":       mdig.String(),
		"b's referred image": mdig.String(),
	}
	unheld := map[string]string{
		"b's layer":          digest.FromString("nobody has this layer").String(),
		"b's sha512 blob":    digest.SHA512.FromString("nobody has this sha512").String(),
		"b's manifest":       digest.FromString("nobody has this manifest").String(),
		"b's referred image": digest.FromString("nobody refers to this").String(),
	}
	for what, d := range held {
		for name, probe := range probes {
			t.Run(what+"/"+name, func(t *testing.T) {
				pa, pu := probe(d), probe(unheld[what])
				pa.auth, pu.auth = a, a
				ra, ru := tr.do(t, pa), tr.do(t, pu)
				if got, want := answer(ra, d), answer(ru, unheld[what]); got != want {
					t.Fatalf("org A tells whether org B holds %s:\nheld:\n%s\n\nnot held:\n%s", d, got, want)
				}
				if ra.status == http.StatusOK || ra.status == http.StatusCreated {
					if name != "referrers" {
						t.Fatalf("org A reached b's %s: %d", what, ra.status)
					}
				}
			})
		}
	}
	// A tag list of a repository only B has looks like one nobody has.
	ra := tr.do(t, call{method: "GET", path: "/v2/only-b/tags/list", auth: a})
	tr.pushImage(t, b, "only-b", "v1", "x")
	rb := tr.do(t, call{method: "GET", path: "/v2/only-b/tags/list", auth: a})
	if answer(ra, "") != answer(rb, "") {
		t.Fatalf("tag list tells B's repository exists:\n%s\n%s", answer(ra, ""), answer(rb, ""))
	}
}

// TestAttackRealmNotFromHeaders: with no realm configured the challenge
// points at the address the client connected to, whatever Host or
// X-Forwarded-* say; a configured realm is used as is.
func TestAttackRealmNotFromHeaders(t *testing.T) {
	tr := newTestRegistry(t)
	req, _ := http.NewRequest("GET", tr.ts.URL+"/v2/web/tags/list", nil)
	req.Host = "evil.example"
	req.Header.Set("X-Forwarded-Host", "evil.example")
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("Forwarded", "host=evil.example;proto=https")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := `Bearer realm="http://` + tr.host + `/token"`
	if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, want) {
		t.Fatalf("challenge %q, want it to start with %q", got, want)
	}
	fixed := newTestRegistry(t, func(c *Config) { c.Realm = "https://registry.example/token" })
	r := fixed.do(t, call{method: "GET", path: "/v2/"})
	if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, `Bearer realm="https://registry.example/token"`) {
		t.Fatalf("configured realm: %q", got)
	}
	// Location headers are relative: no client-chosen host in them either.
	acme := bearer(tr.org(t, "acme", store.ScopePush))
	up, _ := http.NewRequest("POST", tr.ts.URL+"/v2/web/blobs/uploads/", nil)
	up.Host = "evil.example"
	up.Header.Set("X-Forwarded-Host", "evil.example")
	up.Header.Set("Authorization", acme)
	resp, err = http.DefaultClient.Do(up)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc, _ := url.Parse(resp.Header.Get("Location")); resp.StatusCode != http.StatusAccepted || loc == nil || loc.Host != "" || !strings.HasPrefix(loc.Path, "/v2/web/blobs/uploads/") {
		t.Fatalf("upload Location %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}
