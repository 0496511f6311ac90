package mirror

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferryvm/ferry/internal/image"
	"github.com/ferryvm/ferry/internal/paths"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// buildah (Debian's, a client nobody here wrote) pushes an image from
// its own storage to the mirror; the store lists it, with its layers.
func TestBuildahPush(t *testing.T) {
	buildah := prereq.Tool(t, "buildah")
	prereq.Root(t, "buildah's storage")
	st, host := newMirror(t)
	img, _ := random.Image(256<<10, 2)
	// buildah names what it pulls from an OCI layout after its path,
	// which must then be lower case.
	lower, err := os.MkdirTemp("", "mirror-buildah-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(lower) })
	dir := filepath.Join(lower, "oci")
	p, err := layout.Write(dir, emptyIdx())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	bah := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(buildah, append([]string{"--root", filepath.Join(tmp, "root"), "--runroot", filepath.Join(tmp, "run"), "--storage-driver", "vfs"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("buildah %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	id := bah("pull", "-q", "oci:"+dir)
	t.Cleanup(func() {
		_ = exec.Command(buildah, "--root", filepath.Join(tmp, "root"), "--runroot", filepath.Join(tmp, "run"), "--storage-driver", "vfs", "rmi", "-a", "-f").Run()
	})
	bah("push", "-q", "--tls-verify=false", id, "docker://"+host+"/registry.example.com/bah:1")
	d := listed(t, st, "registry.example.com/bah:1")
	got, err := st.ImageByDigest(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if ls, _ := got.Layers(); len(ls) != 2 {
		t.Fatalf("buildah's push has %d layers, want 2", len(ls))
	}
}

// `ferry push` (image.Store.Push) from one daemon's store to another's
// mirror: the image arrives under the pushed name, same digest.
func TestFerryPushToMirror(t *testing.T) {
	st, host := newMirror(t)
	dir := t.TempDir()
	src, err := image.Open(context.Background(), paths.Root(dir), openDB(t, dir), image.WithoutFsync(), image.WithInsecureRegistries(host))
	if err != nil {
		t.Fatal(err)
	}
	up := upstreamRegistry(t)
	img, _ := random.Image(128<<10, 3)
	if err := remote.Write(mustRef(t, up+"/src/app:1"), img); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Pull(context.Background(), up+"/src/app:1"); err != nil {
		t.Fatal(err)
	}
	d, err := src.Push(context.Background(), up+"/src/app:1", host+"/registry.example.com/pushed:2")
	if err != nil {
		t.Fatalf("ferry push to the mirror: %v", err)
	}
	want, _ := img.Digest()
	if d != want {
		t.Fatalf("push returned %s, want %s", d, want)
	}
	if got := listed(t, st, "registry.example.com/pushed:2"); got != want {
		t.Fatalf("mirror stored %s, pushed %s", got, want)
	}
}
