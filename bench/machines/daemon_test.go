package machines

import (
	"bytes"
	"context"

	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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
	// The network side lives in a namespace of its own, never the host's.
	ns := filepath.Base(dir)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		b.Fatalf("ip netns add: %v %s", err, out)
	}
	_ = exec.Command("ip", "-n", ns, "link", "set", "lo", "up").Run()
	go func() {
		done <- daemon.Run(ctx, daemon.Config{Root: filepath.Join(dir, "root"), Socket: sock, NetNS: ns, Ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		b.Fatalf("daemon: %v", err)
	case <-time.After(30 * time.Second):
		b.Fatal("daemon not ready after 30s")
	}
	c, err := api.NewClient("unix://"+sock, "")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		// Machines outlive the daemon by design: destroy them first.
		if list, err := c.ListMachines(context.Background(), "", true); err == nil {
			for _, m := range list {
				_ = c.DestroyMachine(context.Background(), m.App, m.ID, true)
			}
		}
		cancel()
		<-done
		killVMMs(dir)
		_ = exec.Command("ip", "netns", "del", ns).Run()
		os.RemoveAll(dir)
	})
	return c, filepath.Join(dir, "root")
}

// killVMMs kills processes whose command line names a path under dir.
func killVMMs(dir string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		raw, _ := os.ReadFile(p)
		if !strings.Contains(string(raw), dir+"/") {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil && pid != os.Getpid() {
			if proc, err := os.FindProcess(pid); err == nil {
				_ = proc.Kill()
			}
		}
	}
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
