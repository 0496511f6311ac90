package image

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ferryvm/ferry/internal/testimage"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// Peer tools used as oracles.
const (
	cranePath  = "/usr/local/lib/ferry/tools/crane"
	skopeoPath = "/usr/bin/skopeo"
)

// requirePeer skips t under -short or when the peer at path is missing.
func requirePeer(t *testing.T, path string) {
	t.Helper()
	prereq.Short(t, "integration test with peer tools")
	prereq.File(t, path, prereq.Remedy(filepath.Base(path)))
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func writeLayout(t *testing.T, img v1.Image) string {
	dir := t.TempDir()
	p, err := layout.Write(dir, must[v1.ImageIndex](t)(emptyIndex()))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	return dir
}

// An image pushed by skopeo and one pushed by crane into Debian's
// docker-registry pull into ferry with identical digests.
func TestPeersPushFerryPulls(t *testing.T) {
	requirePeer(t, skopeoPath)
	requirePeer(t, cranePath)
	ctx := context.Background()
	host := testimage.DockerRegistry(t, "")
	layered := must[v1.Image](t)(testimage.Layered())
	random := must[v1.Image](t)(testimage.Random(100, 3, 256<<10))

	run(t, skopeoPath, "copy", "--dest-tls-verify=false", "oci:"+writeLayout(t, layered), "docker://"+host+"/peers/skopeo:1")
	tb := filepath.Join(t.TempDir(), "img.tar")
	if err := tarball.WriteToFile(tb, must[name.Tag](t)(name.NewTag("x/y:1")), random); err != nil {
		t.Fatal(err)
	}
	run(t, cranePath, "push", "--insecure", tb, host+"/peers/crane:1")

	s, root := newStore(t)
	for ref, img := range map[string]v1.Image{host + "/peers/skopeo:1": layered, host + "/peers/crane:1": random} {
		peer := strings.TrimSpace(run(t, cranePath, "digest", "--insecure", ref))
		res, err := s.Pull(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		// Peers may convert on push (crane pushes a docker tarball as schema 2,
		// skopeo compresses uncompressed layers): the registry's digest is the oracle.
		if res.Image.ID.String() != peer {
			t.Errorf("%s: ferry %s, registry %s", ref, res.Image.ID, peer)
		}
		cfg := must[v1.Hash](t)(img.ConfigName())
		if det := must[*Details](t)(s.Inspect(ctx, ref)); det.ConfigDigest != cfg {
			t.Errorf("%s: config %s, built %s", ref, det.ConfigDigest, cfg)
		}
		// The cache is an OCI layout that skopeo reads in place (skopeo's
		// oci: transport skips Docker schema 2 entries, so OCI images only).
		if det := must[*Details](t)(s.Inspect(ctx, ref)); det.MediaType != "application/vnd.oci.image.manifest.v1+json" {
			continue
		}
		canon := must[string](t)(CanonicalString(ref))
		raw := run(t, skopeoPath, "inspect", "--raw", "oci:"+root.Content()+":"+canon)
		if d := sha(bytes.TrimSpace([]byte(raw))); d.String() != peer && sha([]byte(raw)).String() != peer {
			t.Errorf("skopeo reads %s from the cache as %s, want %s", canon, d, peer)
		}
	}
	if bad := must[[]v1.Hash](t)(s.Verify(ctx)); len(bad) != 0 {
		t.Errorf("verify: %v", bad)
	}
	// ferry push to the real registry; crane sees the same digest.
	if _, err := s.Push(ctx, host+"/peers/crane:1", host+"/peers/ferry:2"); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(run(t, cranePath, "digest", "--insecure", host+"/peers/ferry:2")), strings.TrimSpace(run(t, cranePath, "digest", "--insecure", host+"/peers/crane:1")); got != want {
		t.Errorf("pushed digest %s", got)
	}
}

// ferry save output reads in skopeo (oci-archive:), and skopeo's archive
// loads back into ferry with the same image ID.
func TestSaveSkopeoRoundTrip(t *testing.T) {
	requirePeer(t, skopeoPath)
	ctx := context.Background()
	// All layers gzip: skopeo copies them unchanged (it would compress an uncompressed one).
	img := must[v1.Image](t)(testimage.Random(110, 3, 32<<10))
	arc, ref := savedArchive(t, img, "save/skopeo:3")
	dir := t.TempDir()
	saved := filepath.Join(dir, "ferry.tar")
	os.WriteFile(saved, arc, 0o644)
	run(t, skopeoPath, "copy", "oci-archive:"+saved+":"+ref, "oci:"+filepath.Join(dir, "layout")+":x")
	idx := must[v1.ImageIndex](t)(layout.ImageIndexFromPath(filepath.Join(dir, "layout")))
	im := must[*v1.IndexManifest](t)(idx.IndexManifest())
	want := must[v1.Hash](t)(img.Digest())
	if len(im.Manifests) != 1 || im.Manifests[0].Digest != want {
		t.Fatalf("skopeo read %+v, want %s", im.Manifests, want)
	}
	back := filepath.Join(dir, "skopeo.tar")
	run(t, skopeoPath, "copy", "oci:"+filepath.Join(dir, "layout")+":x", "oci-archive:"+back+":docker.io/library/back:1")
	s, _ := newStore(t)
	f := must[*os.File](t)(os.Open(back))
	defer f.Close()
	loaded, err := s.Load(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 1 || loaded[0].ID != want || len(loaded[0].Refs) != 1 || loaded[0].Refs[0] != "docker.io/library/back:1" {
		t.Fatalf("loaded %+v", loaded)
	}
}
