package network

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// ns is where the network side runs: the caller's namespace or a named one.
type ns struct {
	name string
}

// handle returns a netlink handle in the namespace.
func (n ns) handle() (*netlink.Handle, error) {
	if n.name == "" {
		return netlink.NewHandle()
	}
	h, err := netns.GetFromName(n.name)
	if err != nil {
		return nil, fmt.Errorf("netns %s: %w: %w", n.name, err, errdefs.ErrNotFound)
	}
	defer func() { _ = h.Close() }()
	return netlink.NewHandleAt(h)
}

// do runs fn on a locked OS thread switched into the namespace, for what
// netlink cannot do by handle: opening /dev/net/tun (a TAP is created in
// the opener's namespace) and probing ports with real sockets (a socket
// belongs to its creator's namespace for life).
func (n ns) do(fn func() error) error {
	if n.name == "" {
		return fn()
	}
	target, err := netns.GetFromName(n.name)
	if err != nil {
		return fmt.Errorf("netns %s: %w: %w", n.name, err, errdefs.ErrNotFound)
	}
	defer func() { _ = target.Close() }()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer func() { _ = orig.Close() }()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", n.name, err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: it dies with this goroutine instead of
		// running other goroutines in the wrong namespace.
		return fmt.Errorf("leave netns %s: %w", n.name, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// run executes a command in the namespace, feeding it stdin, and returns
// its stdout. nsenter joins the network namespace alone: `ip netns exec`
// would copy the host's mount table into a new mount namespace, pinning
// whatever the host has mounted until the command exits.
func (n ns) run(ctx context.Context, stdin string, args ...string) ([]byte, error) {
	if n.name != "" {
		args = append([]string{"nsenter", "--net=" + filepath.Join("/var/run/netns", n.name), "--"}, args...)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if _, lerr := exec.LookPath(args[0]); lerr != nil {
			return nil, fmt.Errorf("%s not found in PATH (install %s): %w", args[0], pkgOf(args[0]), errdefs.ErrUnavailable)
		}
		return nil, fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

func pkgOf(bin string) string {
	switch bin {
	case "nft":
		return "nftables"
	case "ip":
		return "iproute2"
	case "nsenter":
		return "util-linux"
	}
	return bin
}

// sysctl sets a sysctl inside the namespace (/proc/sys/net resolves to the
// namespace of the thread that opens it). The key is given as path
// segments so interface names may hold dots.
func (n ns) sysctl(value string, key ...string) error {
	path := "/proc/sys/" + strings.Join(key, "/")
	return n.do(func() error {
		if err := os.WriteFile(path, []byte(value), 0o600); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", strings.Join(key, "."), value, err)
		}
		return nil
	})
}

// readSysctl reads a sysctl inside the namespace.
func (n ns) readSysctl(key ...string) (string, error) {
	path := "/proc/sys/" + strings.Join(key, "/")
	var v string
	err := n.do(func() error {
		b, err := os.ReadFile(path)
		v = strings.TrimSpace(string(b))
		return err
	})
	return v, err
}
