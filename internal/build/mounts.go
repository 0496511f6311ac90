package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/guest"
)

// cacheMount is a RUN --mount=type=cache in use by a stage: its content
// persists on the host between builds (mounts/<hash>.fts, a tree stream)
// and lives in the stage's VM while the stage runs. One build at a time
// holds a cache id (mounts/<hash>.lock): a concurrent build waits, so two
// builds never write one cache at once.
type cacheMount struct {
	id   string
	file string
	lock *os.File
	vmID string
}

// cacheDir returns the VM directory of cache id for the stage, loading
// its persisted content first.
func (bd *build) cacheDir(ctx context.Context, st *stageState, s Session, id string) (string, error) {
	for _, c := range st.caches {
		if c.id == id {
			return c.vmID, nil
		}
	}
	h := sha256.Sum256([]byte(id))
	base := filepath.Join(bd.b.c.mountsDir(), hex.EncodeToString(h[:16]))
	lock, err := bd.lockCache(ctx, base+".lock", id)
	if err != nil {
		return "", err
	}
	c := &cacheMount{id: id, file: base + ".fts", lock: lock, vmID: st.vmID("c")}
	st.caches = append(st.caches, c)
	f, err := os.Open(c.file)
	if errors.Is(err, os.ErrNotExist) {
		return c.vmID, nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := s.Load(ctx, guest.LoadDir, c.vmID, f); err != nil {
		return "", fmt.Errorf("load cache %s: %w", id, err)
	}
	return c.vmID, nil
}

func (bd *build) lockCache(ctx context.Context, p, id string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	told := false
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		if !told {
			bd.emit(Event{Message: fmt.Sprintf("waiting for cache %q, in use by another build", id)})
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// save writes the cache's content back to the host, atomically.
func (c *cacheMount) save(ctx context.Context, s Session) error {
	tmp := fmt.Sprintf("%s.tmp-%s", c.file, newID())
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	err = s.Save(ctx, c.vmID, f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("save cache %s: %w", c.id, err)
	}
	return os.Rename(tmp, c.file)
}

func (c *cacheMount) unlock() {
	if c.lock != nil {
		c.lock.Close()
		c.lock = nil
	}
}
