package content

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Spool writes r to a fresh file in ingest/ and commits it under the
// digest its bytes hash to: for blobs whose digest is known only once
// written (the layers a build makes). The same guarantees hold as for
// Writer: nothing is visible before it is fsynced and renamed. A blob
// already present is kept and the spooled copy dropped.
func (s *Store) Spool(ctx context.Context, r io.Reader) (v1.Hash, int64, error) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(s.ingestDir(), "spool-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return v1.Hash{}, 0, fmt.Errorf("spool blob: %w", wrapDisk(err))
	}
	committed := false
	defer func() {
		f.Close()
		if !committed {
			_ = os.Remove(tmp)
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), &ctxReader{ctx: ctx, r: r})
	if err != nil {
		return v1.Hash{}, 0, fmt.Errorf("spool blob: %w", wrapDisk(err))
	}
	d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	if !s.noSync {
		if err := f.Sync(); err != nil {
			return v1.Hash{}, 0, fmt.Errorf("spool blob: fsync: %w", wrapDisk(err))
		}
	}
	if err := f.Chmod(0o400); err != nil {
		return v1.Hash{}, 0, err
	}
	if err := s.lock(ctx, d); err != nil {
		return v1.Hash{}, 0, err
	}
	defer s.unlock(d)
	if s.Has(d) {
		return d, n, nil
	}
	if err := os.Rename(tmp, s.Path(d)); err != nil {
		return v1.Hash{}, 0, fmt.Errorf("commit %s: %w", d, err)
	}
	committed = true
	if !s.noSync {
		syncDir(filepath.Dir(s.Path(d)))
	}
	return d, n, nil
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}
