package kernel

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// kernelScript runs scripts/kernel.sh with its inputs and outputs redirected
// into dir, so no real kernel source, cache or install dir is touched.
func kernelScript(t *testing.T, dir, fragment string, args ...string) (string, error) {
	t.Helper()
	return kernelScriptTo(t, nil, dir, fragment, args...)
}

// kernelScriptTo is kernelScript writing its output to out as it runs.
func kernelScriptTo(t *testing.T, out *lockedBuffer, dir, fragment string, args ...string) (string, error) {
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
	if out != nil {
		cmd.Stdout, cmd.Stderr = out, out
		return "", cmd.Run()
	}
	b, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(b)), err
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

// kernelScriptEnv is kernelScript with extra environment.
func kernelScriptEnv(t *testing.T, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return kernelScript(t, dir, "CONFIG_VIRTIO=y\n", args...)
}

// lockCache takes the build lock as a running build would, until release.
func lockCache(t *testing.T, dir string) (release func()) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "cache"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "cache", ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { f.Close() }) }
	t.Cleanup(release)
	return release
}

// TestKernelScriptCachedAndWaits: `cached` says whether the inputs are
// built; a build finds another one running, says so, waits for it, and
// installs what it left in the cache; installing a cached build does not
// wait for a build (of other inputs) holding the lock.
func TestKernelScriptCachedAndWaits(t *testing.T) {
	dir := t.TempDir()
	if out, err := kernelScript(t, dir, "CONFIG_VIRTIO=y\n", "cached"); err == nil {
		t.Fatalf("cached with an empty cache succeeded: %s", out)
	}
	h, err := kernelScript(t, dir, "CONFIG_VIRTIO=y\n", "hash")
	if err != nil {
		t.Fatal(err)
	}
	release := lockCache(t, dir)
	done := make(chan struct{})
	buf := &lockedBuffer{}
	go func() {
		defer close(done)
		_, err = kernelScriptTo(t, buf, dir, "CONFIG_VIRTIO=y\n")
	}()
	waitFor(t, done, buf, "kernel: waiting")
	// The "other build" finishes: its result is in the cache.
	for _, name := range []string{"vmlinux", "bzImage", "config"} {
		touch(t, filepath.Join(dir, "cache", h, name))
	}
	release()
	<-done
	if out := buf.String(); err != nil || !strings.Contains(out, "kernel: waiting for the build already running") || !strings.Contains(out, "kernel: installed") {
		t.Fatalf("kernel.sh after waiting: %v\n%s", err, out)
	}
	if out, err := kernelScript(t, dir, "CONFIG_VIRTIO=y\n", "cached"); err != nil {
		t.Errorf("cached after the build: %v %s", err, out)
	}
	lockCache(t, dir)
	if out, err := kernelScript(t, dir, "CONFIG_VIRTIO=y\n"); err != nil || strings.Contains(out, "waiting") {
		t.Errorf("installing a cached build with the lock held: %v\n%s", err, out)
	}
}

// waitFor waits until buf shows want, failing when done closes first.
func waitFor(t *testing.T, done <-chan struct{}, buf *lockedBuffer, want string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !strings.Contains(buf.String(), want); {
		select {
		case <-done:
			t.Fatalf("ended before printing %q:\n%s", want, buf)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q within a minute:\n%s", want, buf)
		}
	}
}

// TestKernelScriptBackground: `background` returns at once and leaves a
// detached build logging to FERRY_KERNEL_LOG, which waits for a build
// holding the lock and then runs (here it fails: the source is fake); a
// second `background` while it runs starts none.
func TestKernelScriptBackground(t *testing.T) {
	dir := t.TempDir()
	logf := filepath.Join(dir, "kernel.log")
	env := []string{"FERRY_KERNEL_LOG=" + logf}
	release := lockCache(t, dir)
	start := time.Now()
	out, err := kernelScriptEnv(t, dir, env, "background")
	if err != nil || !strings.Contains(out, "building the guest kernel in the background") {
		t.Fatalf("background: %v %s", err, out)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("background took %v: it must not wait for the build", d)
	}
	if out, err := kernelScriptEnv(t, dir, env, "background"); err != nil || !strings.Contains(out, "is running") {
		t.Errorf("second background: %v %s", err, out)
	}
	readLog := func() string { b, _ := os.ReadFile(logf); return string(b) }
	for deadline := time.Now().Add(time.Minute); !strings.Contains(readLog(), "kernel: waiting"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the detached build does not wait for the lock; log:\n%s", readLog())
		}
	}
	release()
	// The detached build holds the lock while it runs; wait for it to end.
	deadline := time.Now().Add(time.Minute)
	for {
		f, err := os.OpenFile(filepath.Join(dir, "cache", ".lock"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		f.Close()
		if err == nil && strings.Contains(readLog(), "kernel: extracting") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("detached build did not run to its end within a minute; log:\n%s", readLog())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(readLog(), "background build of") {
		t.Errorf("log lacks the start line:\n%s", readLog())
	}
}

// TestKernelScriptFallbackInstall: the fallback kernel is installed as
// fallback.<version> and the link fallback swapped to it by a rename; a
// fallback directory of an older layout is replaced; a newer version
// replaces the older and removes it.
func TestKernelScriptFallbackInstall(t *testing.T) {
	dir := t.TempDir()
	lib := filepath.Join(dir, "lib")
	unpacked := func(kver string) {
		d := filepath.Join(dir, "cache", "debian", "linux-image-"+kver)
		touch(t, filepath.Join(d, ".done"))
		if err := os.WriteFile(filepath.Join(touchDir(t, filepath.Join(d, "boot")), "vmlinuz-"+kver), []byte("kernel "+kver), 0o644); err != nil {
			t.Fatal(err)
		}
		touch(t, filepath.Join(d, "lib", "modules", kver, "modules.dep"))
	}
	touch(t, filepath.Join(lib, "fallback", "vmlinuz")) // the layout before the link
	for _, kver := range []string{"6.1.0-98-cloud-amd64", "6.1.0-99-cloud-amd64", "6.1.0-99-cloud-amd64"} {
		unpacked(kver)
		out, err := kernelScriptEnv(t, dir, []string{"FERRY_FALLBACK_PACKAGE=linux-image-" + kver}, "fallback")
		if err != nil {
			t.Fatalf("fallback %s: %v\n%s", kver, err, out)
		}
		if target, err := os.Readlink(filepath.Join(lib, "fallback")); err != nil || target != "fallback."+kver {
			t.Errorf("after installing %s: fallback -> %q, %v", kver, target, err)
		}
		fb, err := FindFallback(WithGetenv(func(string) string { return lib }))
		if err != nil || filepath.Base(fb.ModulesDir) != kver {
			t.Errorf("FindFallback after %s: %+v, %v", kver, fb, err)
		}
		if b, _ := os.ReadFile(filepath.Join(lib, "fallback", "vmlinuz")); string(b) != "kernel "+kver {
			t.Errorf("installed vmlinuz %q, want %s's", b, kver)
		}
	}
	ents, _ := os.ReadDir(lib)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{"fallback", "fallback.6.1.0-99-cloud-amd64"}; strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("lib holds %q, want %q (old versions and temporaries removed)", names, want)
	}
}

func touchDir(t *testing.T, d string) string {
	t.Helper()
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// lockedBuffer collects a child's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
