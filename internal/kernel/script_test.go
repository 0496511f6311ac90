package kernel

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// kernelScript runs scripts/kernel.sh with its inputs and outputs redirected
// into dir, so no real kernel source, cache or install dir is touched.
func kernelScript(t *testing.T, dir, fragment string, args ...string) (string, error) {
	t.Helper()
	prereq.Tool(t, "bash")
	frag := filepath.Join(dir, "fragment.config")
	if err := os.WriteFile(frag, []byte(fragment), 0o644); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "linux-source-6.1.tar.xz")
	if _, err := os.Stat(src); err != nil {
		if err := os.WriteFile(src, []byte("not really a kernel"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("bash", append([]string{"../../scripts/kernel.sh"}, args...)...)
	cmd.Env = append(os.Environ(),
		"FERRY_KERNEL_FRAGMENT="+frag,
		"FERRY_KERNEL_SOURCE="+src,
		"FERRY_KERNEL_CACHE="+filepath.Join(dir, "cache"),
		"FERRY_LIB_DIR="+filepath.Join(dir, "lib"),
	)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func TestKernelScriptHash(t *testing.T) {
	dir := t.TempDir()
	h1, err := kernelScript(t, dir, "CONFIG_VIRTIO=y\n", "hash")
	if err != nil {
		t.Fatalf("hash: %v: %s", err, h1)
	}
	if len(h1) != 16 {
		t.Fatalf("hash %q: want 16 hex digits", h1)
	}
	if h2, _ := kernelScript(t, dir, "CONFIG_VIRTIO=y\n", "hash"); h2 != h1 {
		t.Errorf("same inputs hashed %s then %s", h1, h2)
	}
	if h3, _ := kernelScript(t, dir, "CONFIG_VIRTIO=y\nCONFIG_IPV6=y\n", "hash"); h3 == h1 {
		t.Error("a changed fragment kept the hash")
	}
	if p, _ := kernelScript(t, dir, "CONFIG_VIRTIO=y\n", "path"); p != filepath.Join(dir, "cache", h1) {
		t.Errorf("path = %q, want the cache dir named by the hash", p)
	}
	if err := os.WriteFile(filepath.Join(dir, "linux-source-6.1.tar.xz"), []byte("another source"), 0o644); err != nil {
		t.Fatal(err)
	}
	if h4, _ := kernelScript(t, dir, "CONFIG_VIRTIO=y\n", "hash"); h4 == h1 {
		t.Error("a changed source tarball kept the hash")
	}
}

func TestKernelScriptReusesCache(t *testing.T) {
	dir := t.TempDir()
	frag := "CONFIG_VIRTIO=y\n"
	h, err := kernelScript(t, dir, frag, "hash")
	if err != nil {
		t.Fatal(err)
	}
	entry := filepath.Join(dir, "cache", h)
	for name, body := range map[string]string{"vmlinux": "elf", "bzImage": "bz", "config": frag} {
		touch(t, filepath.Join(entry, name))
		if err := os.WriteFile(filepath.Join(entry, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The fake source cannot build: success proves the cache was used.
	out, err := kernelScript(t, dir, frag)
	if err != nil {
		t.Fatalf("kernel.sh with a cached build: %v\n%s", err, out)
	}
	for name, want := range map[string]string{Vmlinux: "elf", BzImage: "bz", "kernel.config": frag, "kernel.hash": h + "\n"} {
		if got, _ := os.ReadFile(filepath.Join(dir, "lib", name)); string(got) != want {
			t.Errorf("installed %s = %q, want %q", name, got, want)
		}
	}
	if got, err := FindKernel(WithGetenv(func(string) string { return filepath.Join(dir, "lib") })); err != nil || got != filepath.Join(dir, "lib", Vmlinux) {
		t.Errorf("FindKernel after install = %q, %v", got, err)
	}
}
