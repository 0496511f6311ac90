package testimage

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// Registry starts an in-process registry (go-containerregistry's
// pkg/registry, in memory) on a loopback port for the test's lifetime and
// returns its host:port.
func Registry(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// Serve starts an in-process registry wrapped by mw (to make it lie, fail
// or count) and returns its host:port.
func Serve(t testing.TB, mw func(http.Handler) http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(mw(registry.New(registry.Logger(log.New(io.Discard, "", 0)))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// Push writes img to host/repo (plain HTTP) and returns the reference.
func Push(t testing.TB, host, repo string, img v1.Image) string {
	t.Helper()
	ref := host + "/" + repo
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatalf("testimage: %v", err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("testimage: push %s: %v", ref, err)
	}
	return ref
}

// PushIndex writes idx to host/repo (plain HTTP) and returns the reference.
func PushIndex(t testing.TB, host, repo string, idx v1.ImageIndex) string {
	t.Helper()
	ref := host + "/" + repo
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatalf("testimage: %v", err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatalf("testimage: push %s: %v", ref, err)
	}
	return ref
}

// DockerRegistryPath is Debian's distribution registry binary.
const DockerRegistryPath = "/usr/bin/docker-registry"

// DockerRegistry starts Debian's docker-registry as a real process on a
// loopback port with filesystem storage in dir (a temp dir when ""), stops
// it at cleanup, and returns host:port. The test is skipped, saying so,
// when the binary is missing.
func DockerRegistry(t testing.TB, dir string) string {
	t.Helper()
	prereq.File(t, DockerRegistryPath, prereq.Remedy("docker-registry"))
	if dir == "" {
		dir = t.TempDir()
	}
	host, stop, err := StartDockerRegistry(dir)
	if err != nil {
		t.Fatalf("testimage: %v", err)
	}
	t.Cleanup(stop)
	return host
}

// StartDockerRegistry starts docker-registry on a free loopback port with
// storage in dir and waits until it answers; stop kills it (by PID) and waits.
func StartDockerRegistry(dir string) (host string, stop func(), err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	host = l.Addr().String()
	_ = l.Close()
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "storage"), host)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", nil, err
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return "", nil, err
	}
	cmd := exec.Command(DockerRegistryPath, "serve", cfgPath)
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		return "", nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return "", nil, fmt.Errorf("start %s: %w", DockerRegistryPath, err)
	}
	stop = func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return host, stop, nil
			}
		}
		if time.Now().After(deadline) {
			stop()
			log, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
			return "", nil, fmt.Errorf("docker-registry on %s did not come up: %s", host, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
