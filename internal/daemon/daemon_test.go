package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/errdefs"
)

// startDaemon runs a daemon on a temp root and socket until the test ends.
func startDaemon(t *testing.T, cfg Config) (Config, *api.Client) {
	t.Helper()
	dir := t.TempDir()
	if cfg.Root == "" {
		cfg.Root = filepath.Join(dir, "root")
	}
	if cfg.Socket == "" {
		cfg.Socket = filepath.Join(dir, "run", "ferry.sock")
	}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ready := make(chan struct{})
	cfg.Ready = func() { close(ready) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("daemon did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("daemon not ready after 30s")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon exit: %v", err)
		}
	})
	c, err := api.NewClient("unix://"+cfg.Socket, "")
	if err != nil {
		t.Fatal(err)
	}
	return cfg, c
}

func TestPingAndSocketMode(t *testing.T) {
	cfg, c := startDaemon(t, Config{})
	if err := c.Do(context.Background(), "GET", "/v1/_ping", nil, nil); err != nil {
		t.Fatalf("ping: %v", err)
	}
	fi, err := os.Stat(cfg.Socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode = %v, want 0660", fi.Mode().Perm())
	}
	pid, _ := os.ReadFile(filepath.Join(cfg.Root, "daemon.lock"))
	if strings.TrimSpace(string(pid)) != fmt.Sprint(os.Getpid()) {
		t.Fatalf("lock file holds %q, want our pid", pid)
	}
}

func TestSecondDaemonOnSameRootFails(t *testing.T) {
	cfg, _ := startDaemon(t, Config{})
	err := Run(context.Background(), Config{Root: cfg.Root, Socket: filepath.Join(t.TempDir(), "other.sock"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("want conflict, got %v", err)
	}
	for _, want := range []string{cfg.Root, fmt.Sprintf("pid %d", os.Getpid()), "--root"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Count(err.Error(), "\n") != 0 {
		t.Errorf("error is not one line: %q", err)
	}
}

func TestStaleSocketReplacedLiveOneRefused(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "ferry.sock")
	// A stale socket: bound, then the listener's file left behind.
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	_, c := startDaemon(t, Config{Socket: sock})
	if err := c.Do(context.Background(), "GET", "/v1/_ping", nil, nil); err != nil {
		t.Fatalf("ping after replacing a stale socket: %v", err)
	}
	// A live one (the daemon above) is never taken over.
	err = Run(context.Background(), Config{Root: filepath.Join(dir, "root2"), Socket: sock,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), sock) {
		t.Fatalf("want conflict naming the socket, got %v", err)
	}
}

func TestTCPNeedsToken(t *testing.T) {
	err := Run(context.Background(), Config{Root: t.TempDir(), Socket: filepath.Join(t.TempDir(), "s.sock"), APIAddr: "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), "--api-token") {
		t.Fatalf("want an error asking for --api-token, got %v", err)
	}
	addr := freeAddr(t)
	startDaemon(t, Config{APIAddr: addr, APIToken: "s3cret"})
	ctx := context.Background()
	good, _ := api.NewClient("tcp://"+addr, "s3cret")
	if err := good.Do(ctx, "GET", "/v1/_ping", nil, nil); err != nil {
		t.Fatalf("with token: %v", err)
	}
	bad, _ := api.NewClient("tcp://"+addr, "")
	err = bad.Do(ctx, "GET", "/v1/_ping", nil, nil)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != 401 {
		t.Fatalf("without token: want 401, got %v", err)
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestSocketGroup(t *testing.T) {
	cfg, _ := startDaemon(t, Config{SocketGroup: fmt.Sprint(os.Getgid())})
	fi, err := os.Stat(cfg.Socket)
	if err != nil {
		t.Fatal(err)
	}
	if gid := fi.Sys().(*syscall.Stat_t).Gid; int(gid) != os.Getgid() {
		t.Fatalf("socket gid %d, want %d", gid, os.Getgid())
	}
	err = Run(context.Background(), Config{Root: t.TempDir(), Socket: filepath.Join(t.TempDir(), "g.sock"),
		SocketGroup: "no-such-group-ferry", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "no-such-group-ferry") {
		t.Fatalf("unknown group: %v", err)
	}
}
