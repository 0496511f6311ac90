package cli

import (
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ferryvm/ferry/internal/testimage"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// An image skopeo pushes to `ferry daemon --mirror-addr` is listed by
// `ferry images` and inspected with no pull.
func TestMirrorPushListed(t *testing.T) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Fatal("skopeo is not installed (scripts/deps.sh installs it)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	e := newFerryEnv(t, "--mirror-addr", addr)

	img, err := random.Image(1<<20, 2)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "oci")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(skopeo, "copy", "--dest-tls-verify=false", "oci:"+dir, "docker://"+addr+"/registry.example.com/pushed:v1").CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo copy to the mirror: %v\n%s", err, out)
	}
	d, _ := img.Digest()
	if got := e.ok("images"); !strings.Contains(got, "registry.example.com/pushed") || !strings.Contains(got, "v1") {
		t.Fatalf("ferry images after a mirror push:\n%s", got)
	}
	if got := e.ok("image", "inspect", "registry.example.com/pushed:v1"); !strings.Contains(got, d.Hex[:12]) {
		t.Fatalf("ferry image inspect after a mirror push (want %s):\n%s", d, got)
	}
}

// An image crane pushes to the mirror gets its root filesystem built in
// the background (--mirror-prepare, on by default): `ferry image inspect`
// reports the base built with no run and no `ferry image rootfs`, so its
// first machine only boots.
func TestMirrorPushBuildsRootfs(t *testing.T) {
	crane := prereq.Tool(t, "crane")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	e := newFerryEnv(t, "--mirror-addr", addr)
	img, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	const ref = "registry.example.com/mirror2/prepared:v1"
	tag, _ := name.NewTag(ref)
	tb := filepath.Join(t.TempDir(), "busybox.tar")
	if err := tarball.WriteToFile(tb, tag, img); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(crane, "push", "--insecure", tb, addr+"/"+ref).CombinedOutput(); err != nil {
		t.Fatalf("crane push to the mirror: %v\n%s", err, out)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(e.ok("image", "inspect", ref), `"built": true`) {
		if time.Now().After(deadline) {
			t.Fatalf("the pushed image's rootfs base was never built:\n%s\ndaemon:\n%s", e.ok("image", "inspect", ref), e.daemonLog)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
