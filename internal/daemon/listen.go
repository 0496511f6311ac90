package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// listen opens the unix socket and, when configured, the TCP address. The
// listeners are closed by the API server's shutdown.
func (d *daemon) listen() ([]listener, error) {
	ul, err := listenUnix(d.cfg.Socket)
	if err != nil {
		return nil, err
	}
	if d.cfg.SocketGroup != "" {
		if err := chgrp(d.cfg.Socket, d.cfg.SocketGroup); err != nil {
			_ = ul.Close()
			return nil, err
		}
	}
	ls := []listener{{Listener: ul}}
	if d.cfg.APIAddr != "" {
		tl, err := net.Listen("tcp", d.cfg.APIAddr)
		if err != nil {
			_ = ul.Close()
			return nil, fmt.Errorf("listen on --api-addr %s: %w", d.cfg.APIAddr, err)
		}
		ls = append(ls, listener{Listener: tl, token: d.cfg.APIToken})
	}
	if d.docker == nil {
		return ls, nil
	}
	closeAll := func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}
	if d.cfg.DockerSocket != "" {
		dl, err := listenUnix(d.cfg.DockerSocket)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("--docker-socket: %w", err)
		}
		if d.cfg.SocketGroup != "" {
			if err := chgrp(d.cfg.DockerSocket, d.cfg.SocketGroup); err != nil {
				_ = dl.Close()
				closeAll()
				return nil, err
			}
		}
		ls = append(ls, listener{Listener: dl, docker: true})
	}
	if d.cfg.DockerAddr != "" {
		tl, err := net.Listen("tcp", d.cfg.DockerAddr)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("listen on --docker-addr %s: %w", d.cfg.DockerAddr, err)
		}
		l := listener{Listener: tl, token: d.cfg.APIToken, docker: true}
		if d.cfg.DockerTLS.set() {
			if l.tls, err = d.cfg.DockerTLS.config(); err != nil {
				_ = tl.Close()
				closeAll()
				return nil, err
			}
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// listenUnix listens on path with mode 0660, replacing a stale socket file
// only after checking that nothing answers on it.
func listenUnix(path string) (net.Listener, error) {
	//nolint:gosec // /run/ferry must be traversable for members of the socket group
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("socket path %s exists and is not a socket; remove it or pass another --socket: %w", path, errdefs.ErrConflict)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			_ = c.Close()
			return nil, fmt.Errorf("another process already serves %s (a ferry daemon on another root?); stop it or pass another --socket: %w", path, errdefs.ErrConflict)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	//nolint:gosec // group access to the socket is the point of --group (Docker's 0660)
	if err := os.Chmod(path, 0o660); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("chmod socket: %w", err)
	}
	return l, nil
}

// chgrp gives the socket to group (a name or a numeric gid).
func chgrp(path, group string) error {
	gid, err := strconv.Atoi(group)
	if err != nil {
		g, lerr := user.LookupGroup(group)
		if lerr != nil {
			return fmt.Errorf("--group %s: %w: %w", group, lerr, errdefs.ErrInvalidArgument)
		}
		if gid, err = strconv.Atoi(g.Gid); err != nil {
			return fmt.Errorf("--group %s: gid %q: %w", group, g.Gid, errdefs.ErrInvalidArgument)
		}
	}
	if err := os.Chown(path, -1, gid); err != nil {
		return fmt.Errorf("give socket %s to group %s: %w", path, group, err)
	}
	return nil
}
