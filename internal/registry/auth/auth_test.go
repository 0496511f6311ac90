package auth

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/registry/store"
)

func TestParseScopes(t *testing.T) {
	got := ParseScopes([]string{"repository:a/b:pull,push repository:host:5000/x:pull", "registry:catalog:*", "bogus", "repository(plugin):p:pull"})
	want := []Access{
		{"repository", "a/b", []string{"pull", "push"}},
		{"repository", "host:5000/x", []string{"pull"}},
		{"registry", "catalog", []string{"*"}},
		{"repository", "p", []string{"pull"}},
	}
	if a, b := mustJSON(got), mustJSON(want); a != b {
		t.Fatalf("got %s\nwant %s", a, b)
	}
}

func TestGrantIntersects(t *testing.T) {
	pull := store.Token{Scope: store.ScopePull}
	push := store.Token{Scope: store.ScopePush}
	for name, c := range map[string]struct {
		tok  store.Token
		req  string
		want string
	}{
		"pull token asks push":   {pull, "repository:web:pull,push,delete", `[{"type":"repository","name":"web","actions":["pull"]}]`},
		"push token asks all":    {push, "repository:web:*", `[{"type":"repository","name":"web","actions":["delete","pull","push"]}]`},
		"invalid name dropped":   {push, "repository:../x:pull repository:UP:pull", `null`},
		"unknown action dropped": {push, "repository:web:admin", `null`},
		"catalog":                {pull, "registry:catalog:*", `[{"type":"registry","name":"catalog","actions":["*"]}]`},
		"other registry scope":   {push, "registry:gc:*", `null`},
		"merged duplicates":      {push, "repository:web:pull repository:web:push", `[{"type":"repository","name":"web","actions":["pull","push"]}]`},
	} {
		t.Run(name, func(t *testing.T) {
			if got := mustJSON(Grant(c.tok, ParseScopes([]string{c.req}))); got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
}

func TestIssueVerify(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	iss := NewIssuer([]byte("secret"), "svc", WithTTL(time.Minute), WithLeeway(10*time.Second), WithClock(clock))
	tok := store.Token{ID: "t1", Org: "acme", OrgID: "o1", Scope: store.ScopePush}
	jwt, _, err := iss.Issue(tok, []Access{{"repository", "web", []string{"pull"}}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := iss.Verify(jwt)
	if err != nil || !c.Allows("repository", "web", "pull") || c.Allows("repository", "web", "push") || c.OrgID != "o1" {
		t.Fatalf("verify: %+v %v", c, err)
	}
	now = now.Add(time.Minute + 5*time.Second) // expired, within leeway
	if _, err := iss.Verify(jwt); err != nil {
		t.Fatalf("within leeway: %v", err)
	}
	now = now.Add(10 * time.Second)
	if _, err := iss.Verify(jwt); !errors.Is(err, errdefs.ErrUnauthorized) {
		t.Fatalf("expired: %v", err)
	}
	now = now.Add(-75 * time.Second)
	other := NewIssuer([]byte("secret"), "other-svc", WithClock(clock))
	if _, err := other.Verify(jwt); err == nil {
		t.Fatal("wrong audience accepted")
	}
	wrongKey := NewIssuer([]byte("other"), "svc", WithClock(clock))
	if _, err := wrongKey.Verify(jwt); err == nil {
		t.Fatal("wrong key accepted")
	}
	parts := strings.Split(jwt, ".")
	if _, err := iss.Verify(parts[0] + "." + parts[1] + "x." + parts[2]); err == nil {
		t.Fatal("tampered claims accepted")
	}
	// A token's JWT never outlives the token.
	short := tok
	short.ExpiresAt = now.Add(10 * time.Second)
	jwt2, _, _ := iss.Issue(short, nil)
	c2, _ := iss.Verify(jwt2)
	if !c2.ExpiresAt.Equal(short.ExpiresAt) {
		t.Fatalf("jwt expires %v, token %v", c2.ExpiresAt, short.ExpiresAt)
	}
}

type fakeAuthn map[string]store.Token

func (f fakeAuthn) Authenticate(_ context.Context, s string) (store.Token, error) {
	if t, ok := f[s]; ok {
		return t, nil
	}
	return store.Token{}, errdefs.ErrUnauthorized
}

func TestTokenEndpoint(t *testing.T) {
	iss := NewIssuer([]byte("k"), "svc")
	h := TokenHandler(fakeAuthn{"good": {ID: "t", Org: "acme", OrgID: "o", Scope: store.ScopePull}}, iss, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ts := httptest.NewServer(h)
	defer ts.Close()
	get := func(user, pass string, q url.Values) (int, map[string]any) {
		req, _ := http.NewRequest("GET", ts.URL+"?"+q.Encode(), nil)
		if user != "" || pass != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	q := url.Values{"service": {"svc"}, "scope": {"repository:web:pull,push"}}
	if st, _ := get("", "", q); st != 401 {
		t.Fatalf("anonymous: %d", st)
	}
	if st, _ := get("acme", "bad", q); st != 401 {
		t.Fatalf("bad token: %d", st)
	}
	if st, _ := get("other", "good", q); st != 401 {
		t.Fatalf("wrong org: %d", st)
	}
	if st, _ := get("acme", "good", url.Values{"service": {"elsewhere"}}); st != 400 {
		t.Fatalf("wrong service: %d", st)
	}
	st, m := get("acme", "good", q)
	if st != 200 || m["token"] == "" || m["token"] != m["access_token"] || m["expires_in"].(float64) != 300 {
		t.Fatalf("token: %d %v", st, m)
	}
	c, err := iss.Verify(m["token"].(string))
	if err != nil || c.Allows("repository", "web", "push") || !c.Allows("repository", "web", "pull") {
		t.Fatalf("claims %+v %v", c, err)
	}
	// OAuth2 password grant.
	form := url.Values{"grant_type": {"password"}, "username": {"acme"}, "password": {"good"}, "service": {"svc"}, "scope": {"repository:web:pull"}}
	resp, err := http.PostForm(ts.URL, form)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("oauth2: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
