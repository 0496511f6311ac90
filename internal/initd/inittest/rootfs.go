package inittest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Passwd and Group are the busybox root's /etc/passwd and /etc/group:
// root, app (1000, also in group extra 2000) and nobody.
const (
	Passwd = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n" //nolint:gosec // G101: a test image's passwd file; "x" means no password here
	Group  = "root:x:0:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n"
)

// Rootfs makes an ext4 image holding a static busybox (every applet linked
// in /bin), /etc/passwd, /etc/group, /root, /home/app and files (guest path
// → content; mode 0755 when the content starts with "#!"). It has no /tmp,
// so init's /tmp step is exercised.
func (e *Env) Rootfs(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tree")
	must := func(err error) {
		if err != nil {
			t.Helper()
			t.Fatal(err)
		}
	}
	for _, d := range []string{"bin", "etc", "root", "home/app", "dev", "proc", "sys", "run"} {
		must(os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	bb, err := os.ReadFile(e.Busybox)
	must(err)
	must(os.WriteFile(filepath.Join(dir, "bin/busybox"), bb, 0o755)) //nolint:gosec // G703: a fixed name under the test's own TempDir
	out, err := exec.Command(e.Busybox, "--list").Output()
	must(err)
	for _, a := range strings.Fields(string(out)) {
		if a != "busybox" {
			must(os.Symlink("busybox", filepath.Join(dir, "bin", a)))
		}
	}
	must(os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte(Passwd), 0o644))
	must(os.WriteFile(filepath.Join(dir, "etc/group"), []byte(Group), 0o644))
	for p, c := range files {
		full := filepath.Join(dir, p)
		must(os.MkdirAll(filepath.Dir(full), 0o755))
		mode := os.FileMode(0o644)
		if strings.HasPrefix(c, "#!") {
			mode = 0o755
		}
		must(os.WriteFile(full, []byte(c), mode))
	}
	must(os.Chown(filepath.Join(dir, "home/app"), 1000, 1000))
	img := filepath.Join(t.TempDir(), "base.ext4")
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-b", "4096", "-d", dir, img, "32M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 -d: %v\n%s", err, out)
	}
	return img
}

// Scratch makes a formatted sparse ext4 scratch disk, as the host does.
func Scratch(t testing.TB, sizeMB int) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "scratch.ext4")
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-b", "4096", img, fmt.Sprintf("%dM", sizeMB)).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	return img
}

// Fsck runs e2fsck -fn on img and returns its output; err is set when the
// file system is not clean.
func Fsck(img string) (string, error) {
	out, err := exec.Command("e2fsck", "-fn", img).CombinedOutput()
	return string(out), err
}
