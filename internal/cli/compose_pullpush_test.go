package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferryvm/ferry/internal/image"
	"github.com/ferryvm/ferry/internal/testimage"
)

// TestComposePullPush: `compose pull` pulls every service's image into
// the daemon's store (and fails naming an image no registry has), and
// `compose push` pushes the images of the services that build theirs to
// the registry their name says, skipping the rest.
func TestComposePullPush(t *testing.T) {
	src := testimage.Registry(t)
	dst := testimage.Registry(t)
	web := pushRandom(t, src, "shop/web:1", 31, 2, 16<<10)
	db := pushRandom(t, src, "shop/db:1", 32, 1, 16<<10)
	e := newFerryEnv(t)
	dir := t.TempDir()
	built := dst + "/shop/api:2"
	file := filepath.Join(dir, "compose.yaml")
	yaml := "name: shop\nservices:\n" +
		"  web:\n    image: " + web + "\n" +
		"  db:\n    image: " + db + "\n" +
		"  api:\n    image: " + built + "\n    build: {context: .}\n"
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.ok("compose", "-f", file, "pull", "--ignore-buildable")
	refs := func() map[string]bool {
		var list []image.Summary
		if err := json.Unmarshal([]byte(e.ok("images", "--format", "json")), &list); err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, s := range list {
			for _, r := range s.RepoTags {
				got[r] = true
			}
		}
		return got
	}
	if got := refs(); !got[web] || !got[db] {
		t.Fatalf("after compose pull the store has %v, want %s and %s", got, web, db)
	}

	// api "builds" its image: stand the pulled web image in for it.
	e.ok("tag", web, built)
	e.ok("compose", "-f", file, "push")
	r, err := name.ParseReference(built, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(r); err != nil {
		t.Errorf("compose push did not push %s: %v", built, err)
	}
	for _, other := range []string{"/shop/web:1", "/shop/db:1"} {
		r, _ := name.ParseReference(dst+other, name.Insecure)
		if _, err := remote.Head(r); err == nil {
			t.Errorf("compose push pushed %s, whose service does not build", dst+other)
		}
	}

	// An image no registry has: pull fails and names it.
	missing := src + "/shop/nothing:1"
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("services:\n  x:\n    image: "+missing+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := e.run(nil, "compose", "-f", bad, "pull"); r.code == 0 || !strings.Contains(r.stderr, missing) {
		t.Errorf("pull of a missing image: %s\nwant non-zero naming %s", r, missing)
	} else {
		t.Logf("pull of a missing image: %s", r.stderr)
	}
}
