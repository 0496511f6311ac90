package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ferryvm/ferry/internal/dockerapi"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/testimage"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

func dockerPing(t *testing.T, sock string) *http.Response {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Get("http://docker/v1.44/_ping")
	if err != nil {
		t.Fatalf("ping the Docker API on %s: %v", sock, err)
	}
	resp.Body.Close()
	return resp
}

func TestDockerSocketBesideTheAPISocket(t *testing.T) {
	cfg, _ := startDaemon(t, Config{})
	sock := filepath.Join(filepath.Dir(cfg.Socket), "docker.sock")
	resp := dockerPing(t, sock)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Api-Version") != dockerapi.MaxAPIVersion {
		t.Fatalf("docker ping: %d Api-Version %q", resp.StatusCode, resp.Header.Get("Api-Version"))
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("docker socket: %v %v, want mode 0660", fi, err)
	}
}

func TestDockerSocketFlag(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "elsewhere", "d.sock")
	startDaemon(t, Config{DockerSocket: sock})
	dockerPing(t, sock)

	cfg, _ := startDaemon(t, Config{DockerSocket: "none"})
	if _, err := os.Stat(filepath.Join(filepath.Dir(cfg.Socket), "docker.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("--docker-socket none still made a socket: %v", err)
	}
	err := Run(context.Background(), Config{Root: t.TempDir(), Socket: filepath.Join(t.TempDir(), "s.sock"), DockerAddr: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("--docker-addr without a token: %v, want an invalid argument", err)
	}
}

func TestDockerAddrNeedsTheToken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	startDaemon(t, Config{DockerAddr: addr, APIToken: "s3cret"})
	get := func(token string) int {
		req, _ := http.NewRequest("GET", "http://"+addr+"/v1.44/containers/json", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get(""); c != http.StatusUnauthorized {
		t.Fatalf("without the token: %d, want 401", c)
	}
	if c := get("wrong"); c != http.StatusUnauthorized {
		t.Fatalf("with a wrong token: %d, want 401", c)
	}
	if c := get("s3cret"); c != http.StatusOK {
		t.Fatalf("with the token: %d, want 200", c)
	}
}

// The real docker CLI on --docker-addr (loopback TCP): refused without the
// token with the API's own line, let in with it (config.json HttpHeaders),
// and, being remote, refused a bind mount by the daemon's remote bind
// policy while a local (unix socket) client may make it.
func TestDockerCLIOverTCP(t *testing.T) {
	docker := prereq.Tool(t, "docker")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg, _ := startDaemon(t, Config{DockerAddr: addr, APIToken: "s3cret"})
	dir := t.TempDir()
	run := func(host, config string, args ...string) (string, error) {
		c := exec.Command(docker, args...)
		c.Env = append(os.Environ(), "DOCKER_HOST="+host, "DOCKER_CONFIG="+config)
		out, err := c.CombinedOutput()
		return string(out), err
	}
	tcp := "tcp://" + addr
	bare := filepath.Join(dir, "bare")
	if out, err := run(tcp, bare, "ps"); err == nil || !strings.Contains(out, "missing or wrong API token") {
		t.Fatalf("docker ps over TCP without the token: %v %q, want the token refusal", err, out)
	}
	withToken := filepath.Join(dir, "token")
	if err := os.MkdirAll(withToken, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(withToken, "config.json"), []byte(`{"HttpHeaders":{"Authorization":"Bearer s3cret"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run(tcp, withToken, "ps", "-a"); err != nil || !strings.Contains(out, "CONTAINER ID") {
		t.Fatalf("docker ps over TCP with the token: %v %q", err, out)
	}
	img, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("busybox:tcp")
	tarPath := filepath.Join(dir, "busybox.tar")
	if err := tarball.WriteToFile(tarPath, tag, img); err != nil {
		t.Fatal(err)
	}
	if out, err := run(tcp, withToken, "load", "-i", tarPath); err != nil || !strings.Contains(out, "Loaded image: busybox:tcp") {
		t.Fatalf("docker load over TCP: %v %q", err, out)
	}
	src := filepath.Join(dir, "shared")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := run(tcp, withToken, "create", "-v", src+":/data", "busybox:tcp", "true")
	if err == nil || !strings.Contains(out, "a bind mount is a host privilege") || !strings.Contains(out, "--allow-remote-bind") {
		t.Fatalf("docker create -v over TCP: %v %q, want the remote bind refusal", err, out)
	}
	local := "unix://" + filepath.Join(filepath.Dir(cfg.Socket), "docker.sock")
	if out, err := run(local, bare, "create", "-v", src+":/data", "busybox:tcp", "true"); err != nil {
		t.Fatalf("docker create -v on the local socket: %v %q", err, out)
	}
}
