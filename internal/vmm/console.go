package vmm

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Console logs are written by the VMM itself, never through the daemon:
// QEMU opens the file with -chardev file,append=on and Firecracker's stdout
// is the file opened O_APPEND. So the log keeps filling while the daemon is
// down or restarting. The cap is kept by copy-truncate rotation, run by
// whichever daemon is up: when the file is over Max bytes it is copied to
// <log>.1 (older copies shift to .2 … .Keep) and truncated to zero; because
// the VMM's descriptor is O_APPEND its next write lands at the new end of
// file, not at the old offset. Bytes written between the copy and the
// truncate (a few microseconds) are lost; the size is checked every Interval,
// so the live file can exceed Max by what the guest writes in one interval.

// RotateConsole rotates path when it is larger than max bytes, keeping keep
// old copies (at least 1). It reports whether it rotated.
func RotateConsole(path string, max int64, keep int) (bool, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if os.IsNotExist(err) {
			return false, nil
		}
		return false, err
	}
	if fi.Size() <= max {
		return false, nil
	}
	if keep < 1 {
		keep = 1
	}
	for i := keep; i > 1; i-- {
		_ = os.Rename(fmt.Sprintf("%s.%d", path, i-1), fmt.Sprintf("%s.%d", path, i))
	}
	if err := copyFile(path, path+".1"); err != nil {
		return false, fmt.Errorf("rotate %s: %w", path, err)
	}
	if err := os.Truncate(path, 0); err != nil {
		return false, fmt.Errorf("rotate %s: %w", path, err)
	}
	return true, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}

// Rotator keeps a set of console logs under their cap. The daemon creates
// one, Adds every machine's log when it starts or re-adopts the machine,
// Removes it when the machine goes away, and Runs it for its lifetime.
type Rotator struct {
	Max      int64         // bytes; default 1 MiB
	Keep     int           // old copies; default 1
	Interval time.Duration // default 2s
	Logger   *slog.Logger

	mu    sync.Mutex
	paths map[string]bool
}

// Add starts watching path.
func (r *Rotator) Add(path string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.paths == nil {
		r.paths = map[string]bool{}
	}
	r.paths[path] = true
}

// Remove stops watching path.
func (r *Rotator) Remove(path string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.paths, path)
}

// RotateAll checks every watched log once.
func (r *Rotator) RotateAll() {
	r.mu.Lock()
	paths := make([]string, 0, len(r.paths))
	for p := range r.paths {
		paths = append(paths, p)
	}
	r.mu.Unlock()
	max, keep := r.Max, r.Keep
	if max <= 0 {
		max = 1 << 20
	}
	for _, p := range paths {
		if _, err := RotateConsole(p, max, keep); err != nil && r.Logger != nil {
			r.Logger.Warn("console rotation failed", "path", p, "err", err)
		}
	}
}

// Run rotates every Interval until ctx ends.
func (r *Rotator) Run(ctx context.Context) {
	iv := r.Interval
	if iv <= 0 {
		iv = 2 * time.Second
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.RotateAll()
		}
	}
}
