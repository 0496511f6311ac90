package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferryvm/ferry/internal/dockerapi"
	"github.com/ferryvm/ferry/internal/errdefs"
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
