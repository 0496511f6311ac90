package registry

import (
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/registry/auth"
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
