package registry

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferryvm/ferry/internal/registry/store"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// run runs a peer tool with a private Docker config dir and fails on error.
func run(t *testing.T, env []string, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// peerEnv isolates a tool's credentials and caches in temp dirs.
func peerEnv(t *testing.T) []string {
	dir := t.TempDir()
	return []string{"DOCKER_CONFIG=" + dir, "HOME=" + dir, "XDG_RUNTIME_DIR=" + dir, "REGISTRY_AUTH_FILE=" + filepath.Join(dir, "auth.json")}
}

// ociLayout writes an image index (multi-platform) to an OCI layout dir.
func ociLayout(t *testing.T) (string, v1.ImageIndex) {
	t.Helper()
	amd, arm := ociImage(t, 2048, 2), ociImage(t, 2048, 2)
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	multi := mutateIndex(t, amd, arm)
	if err := p.AppendIndex(multi, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "multi"})); err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(amd, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "single"})); err != nil {
		t.Fatal(err)
	}
	return dir, multi
}

func TestInteropSkopeo(t *testing.T) {
	skopeo := prereq.Tool(t, "skopeo")
	tr := newTestRegistry(t)
	secret := tr.org(t, "acme", store.ScopePush)
	dir, multi := ociLayout(t)
	env := peerEnv(t)
	creds := "acme:" + secret
	run(t, env, skopeo, "copy", "--all", "--dest-tls-verify=false", "--dest-creds", creds, "oci:"+dir+":multi", "docker://"+tr.host+"/web:multi")
	run(t, env, skopeo, "copy", "--dest-tls-verify=false", "--dest-creds", creds, "oci:"+dir+":single", "docker://"+tr.host+"/web:single")
	out := t.TempDir()
	run(t, env, skopeo, "copy", "--all", "--src-tls-verify=false", "--src-creds", creds, "docker://"+tr.host+"/web:multi", "oci:"+out+":back")
	_ = multi // skopeo may re-encode what it pushes: compare what the registry holds with what came back
	raw := run(t, env, skopeo, "inspect", "--raw", "--tls-verify=false", "--creds", creds, "docker://"+tr.host+"/web:multi")
	if !strings.Contains(raw, `"amd64"`) || !strings.Contains(raw, `"arm64"`) {
		t.Fatalf("pushed index lacks a platform: %s", raw)
	}
	back, err := layout.ImageIndexFromPath(out)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := back.IndexManifest()
	if len(im.Manifests) != 1 || im.Manifests[0].Digest.String() != digestOf(raw) {
		t.Fatalf("pulled back %+v, registry has %s", im.Manifests, digestOf(raw))
	}
	tags := run(t, env, skopeo, "list-tags", "--tls-verify=false", "--creds", creds, "docker://"+tr.host+"/web")
	if !strings.Contains(tags, `"Repository": "`+tr.host+`/web"`) || !strings.Contains(tags, "multi") || !strings.Contains(tags, "single") {
		t.Fatalf("list-tags: %s", tags)
	}
	// skopeo login stores credentials where it reads them from.
	cmd := exec.Command(skopeo, "login", "--tls-verify=false", "-u", "acme", "--password-stdin", tr.host)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(secret)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("skopeo login: %v %s", err, b)
	}
	run(t, env, skopeo, "inspect", "--tls-verify=false", "docker://"+tr.host+"/web:single")
}

func TestInteropCrane(t *testing.T) {
	crane := prereq.Tool(t, "crane")
	tr := newTestRegistry(t)
	secret := tr.org(t, "acme", store.ScopePush)
	env := peerEnv(t)
	run(t, env, crane, "auth", "login", tr.host, "-u", "acme", "-p", secret)
	dir, multi := ociLayout(t)
	_ = dir
	ref, _ := name.ParseReference(tr.host + "/base:multi")
	if err := remote.WriteIndex(ref, multi, remote.WithAuth(&authn.Basic{Username: "acme", Password: secret})); err != nil {
		t.Fatal(err)
	}
	// crane copy mounts blobs across repositories of the org.
	run(t, env, crane, "copy", "--insecure", tr.host+"/base:multi", tr.host+"/app:v1")
	want, _ := multi.Digest()
	if got := strings.TrimSpace(run(t, env, crane, "digest", "--insecure", tr.host+"/app:v1")); got != want.String() {
		t.Fatalf("crane digest %s, want %s", got, want)
	}
	cat := run(t, env, crane, "catalog", "--insecure", tr.host)
	if strings.TrimSpace(cat) != "app\nbase" {
		t.Fatalf("crane catalog: %q", cat)
	}
	ls := run(t, env, crane, "ls", "--insecure", tr.host+"/app")
	if strings.TrimSpace(ls) != "v1" {
		t.Fatalf("crane ls: %q", ls)
	}
	run(t, env, crane, "pull", "--insecure", "--format", "oci", tr.host+"/app:v1", t.TempDir())
}

func TestInteropOras(t *testing.T) {
	oras := prereq.Tool(t, "oras")
	tr := newTestRegistry(t)
	secret := tr.org(t, "acme", store.ScopePush)
	env := peerEnv(t)
	work := t.TempDir()
	if err := os.WriteFile(filepath.Join(work, "hello.txt"), []byte("hello from oras\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	login := exec.Command(oras, "login", "--plain-http", "-u", "acme", "--password-stdin", tr.host)
	login.Env = append(os.Environ(), env...)
	login.Stdin = strings.NewReader(secret)
	if b, err := login.CombinedOutput(); err != nil {
		t.Fatalf("oras login: %v %s", err, b)
	}
	cmd := exec.Command(oras, "push", "--plain-http", "--artifact-type", "application/vnd.ferry.test", tr.host+"/art:v1", "hello.txt:text/plain")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("oras push: %v %s", err, b)
	}
	// Attach a referrer (a signature-like artifact) and discover it.
	sig := filepath.Join(work, "sig.txt")
	_ = os.WriteFile(sig, []byte("signed"), 0o644)
	att := exec.Command(oras, "attach", "--plain-http", "--artifact-type", "application/vnd.ferry.sig", tr.host+"/art:v1", "sig.txt:text/plain")
	att.Dir = work
	att.Env = append(os.Environ(), env...)
	if b, err := att.CombinedOutput(); err != nil {
		t.Fatalf("oras attach: %v %s", err, b)
	}
	disc := run(t, env, oras, "discover", "--plain-http", "--format", "json", tr.host+"/art:v1")
	if !strings.Contains(disc, "application/vnd.ferry.sig") {
		t.Fatalf("oras discover: %s", disc)
	}
	pull := t.TempDir()
	run(t, env, oras, "pull", "--plain-http", "-o", pull, tr.host+"/art:v1")
	if b, err := os.ReadFile(filepath.Join(pull, "hello.txt")); err != nil || string(b) != "hello from oras\n" {
		t.Fatalf("oras pull: %q %v", b, err)
	}
}

// TestTwoOrgsSameRepoName: each org pushes "web" and pulls back its own.
func TestTwoOrgsSameRepoName(t *testing.T) {
	tr := newTestRegistry(t)
	imgs := map[string]v1.Image{}
	secrets := map[string]string{}
	for _, org := range []string{"alpha", "beta"} {
		secrets[org] = tr.org(t, org, store.ScopePush)
		imgs[org], _ = random.Image(4096, 2)
		ref, _ := name.ParseReference(tr.host + "/web:latest")
		if err := remote.Write(ref, imgs[org], remote.WithAuth(&authn.Basic{Username: org, Password: secrets[org]})); err != nil {
			t.Fatal(err)
		}
	}
	for _, org := range []string{"alpha", "beta"} {
		ref, _ := name.ParseReference(tr.host + "/web:latest")
		got, err := remote.Image(ref, remote.WithAuth(&authn.Basic{Username: org, Password: secrets[org]}))
		if err != nil {
			t.Fatal(err)
		}
		gd, _ := got.Digest()
		wd, _ := imgs[org].Digest()
		if gd != wd {
			t.Fatalf("%s pulled %s, pushed %s", org, gd, wd)
		}
		layers, _ := got.Layers()
		for _, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				t.Fatalf("%s layer: %v", org, err)
			}
			_ = rc.Close()
		}
	}
}

func digestOf(raw string) string {
	h := v1.Hash{}
	d, _, err := v1.SHA256(strings.NewReader(raw))
	if err == nil {
		h = d
	}
	return h.String()
}

func TestInteropPodman(t *testing.T) {
	podman := prereq.Tool(t, "podman")
	prereq.Root(t, "podman with a private storage root")
	tr := newTestRegistry(t)
	secret := tr.org(t, "acme", store.ScopePush)
	img := ociImage(t, 4096, 2)
	ref, _ := name.ParseReference(tr.host + "/base:v1")
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "acme", Password: secret})); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	env := append(peerEnv(t), "REGISTRY_AUTH_FILE="+filepath.Join(dir, "auth.json"))
	base := []string{"--root", filepath.Join(dir, "storage"), "--runroot", filepath.Join(dir, "run"), "--storage-driver", "vfs"}
	login := exec.Command(podman, append(base, "login", "--tls-verify=false", "-u", "acme", "--password-stdin", tr.host)...)
	login.Env = append(os.Environ(), env...)
	login.Stdin = strings.NewReader(secret)
	if b, err := login.CombinedOutput(); err != nil {
		t.Fatalf("podman login: %v %s", err, b)
	}
	run(t, env, podman, append(base, "pull", "--tls-verify=false", tr.host+"/base:v1")...)
	run(t, env, podman, append(base, "push", "--tls-verify=false", tr.host+"/base:v1", tr.host+"/copy:v1")...)
	got, err := remote.Image(mustRef(t, tr.host+"/copy:v1"), remote.WithAuth(&authn.Basic{Username: "acme", Password: secret}))
	if err != nil {
		t.Fatal(err)
	}
	wantLayers, _ := img.Layers()
	gotLayers, _ := got.Layers()
	if len(gotLayers) != len(wantLayers) {
		t.Fatalf("podman push: %d layers, want %d", len(gotLayers), len(wantLayers))
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
