package machines

import (
	"bytes"
	"context"

	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/daemon"
)

// startDaemon runs a daemon on a fresh root in this process and returns a
// client for it.
func startDaemon(b testing.TB) *api.Client {
	b.Helper()
	c, _ := startDaemonRoot(b)
	return c
}

// startDaemonRoot is startDaemon that also returns the daemon's root.
func startDaemonRoot(b testing.TB) (*api.Client, string) {
	b.Helper()
	dir, err := os.MkdirTemp("", "ferry-bench-")
	if err != nil {
		b.Fatal(err)
	}
	sock := filepath.Join(dir, "ferry.sock")
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Config{Root: filepath.Join(dir, "root"), Socket: sock, Ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		b.Fatalf("daemon: %v", err)
	case <-time.After(30 * time.Second):
		b.Fatal("daemon not ready after 30s")
	}
	b.Cleanup(func() {
		cancel()
		<-done
		os.RemoveAll(dir)
	})
	c, err := api.NewClient("unix://"+sock, "")
	if err != nil {
		b.Fatal(err)
	}
	return c, filepath.Join(dir, "root")
}

// load puts img into the daemon's cache as tag.
func load(b testing.TB, c *api.Client, tag string, img v1.Image) {
	b.Helper()
	t, err := name.NewTag(tag)
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tarball.Write(t, img, &buf); err != nil {
		b.Fatal(err)
	}
	if _, err := c.LoadImages(context.Background(), &buf); err != nil {
		b.Fatal(err)
	}
}
