package testimage

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// The busybox image is runnable: unpacked by umoci (an independent OCI
// implementation) and chrooted into, `sh -c` works and the non-root user exists.
func TestBusyboxRuns(t *testing.T) {
	prereq.Root(t, "for chroot")
	prereq.Tool(t, "umoci")
	img, err := Busybox()
	if errors.Is(err, ErrNoBusybox) {
		prereq.Missing(t, BusyboxPath, prereq.Remedy("busybox"))
	}
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := layout.Write(filepath.Join(dir, "oci"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "bb"})); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "bundle")
	if out, err := exec.Command("umoci", "unpack", "--image", filepath.Join(dir, "oci")+":bb", bundle).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	out, err := exec.Command("chroot", filepath.Join(bundle, "rootfs"), "/bin/sh", "-c", "echo hi; id ferry; test -d /tmp && test -k /tmp && echo sticky").CombinedOutput()
	if err != nil {
		t.Fatalf("chroot sh: %v\n%s", err, out)
	}
	for _, want := range []string{"hi", "uid=1000(ferry) gid=1000(ferry)", "sticky"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
}
