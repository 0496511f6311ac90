package registry

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferryvm/ferry/internal/registry/store"
	"github.com/ferryvm/ferry/internal/registry/store/pgtest"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// TestPostgresMetadataEndToEnd runs the registry on a throwaway Postgres
// (pgtest): an org and token, a push, crane's cross-repository copy
// (mounts), catalog, tags and pull; then a second replica sharing the
// database and storage accepts the same token and serves the same catalog,
// tags and images.
func TestPostgresMetadataEndToEnd(t *testing.T) {
	crane := prereq.Tool(t, "crane")
	dsn := pgtest.DSN(t)
	tr := newTestRegistry(t, func(c *Config) { c.DB = dsn })
	secret := tr.org(t, "acme", store.ScopePush)
	env := peerEnv(t)
	run(t, env, crane, "auth", "login", tr.host, "-u", "acme", "-p", secret)
	_, multi := ociLayout(t)
	ref, _ := name.ParseReference(tr.host + "/base:multi")
	if err := remote.WriteIndex(ref, multi, remote.WithAuth(&authn.Basic{Username: "acme", Password: secret})); err != nil {
		t.Fatal(err)
	}
	run(t, env, crane, "copy", "--insecure", tr.host+"/base:multi", tr.host+"/app:v1")
	want, _ := multi.Digest()
	if got := strings.TrimSpace(run(t, env, crane, "digest", "--insecure", tr.host+"/app:v1")); got != want.String() {
		t.Fatalf("crane digest %s, want %s", got, want)
	}
	if cat := run(t, env, crane, "catalog", "--insecure", tr.host); strings.TrimSpace(cat) != "app\nbase" {
		t.Fatalf("crane catalog: %q", cat)
	}
	run(t, env, crane, "pull", "--insecure", "--format", "oci", tr.host+"/app:v1", t.TempDir())

	// A replica: same database and storage, its own process state.
	r2 := newTestRegistry(t, func(c *Config) { c.DB, c.Root = dsn, tr.root })
	run(t, env, crane, "auth", "login", r2.host, "-u", "acme", "-p", secret)
	if cat := run(t, env, crane, "catalog", "--insecure", r2.host); strings.TrimSpace(cat) != "app\nbase" {
		t.Fatalf("replica catalog: %q", cat)
	}
	if ls := run(t, env, crane, "ls", "--insecure", r2.host+"/app"); strings.TrimSpace(ls) != "v1" {
		t.Fatalf("replica tags: %q", ls)
	}
	run(t, env, crane, "pull", "--insecure", "--format", "oci", r2.host+"/base:multi", t.TempDir())
}
