package content

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// ErrDigestMismatch is wrapped by Commit when the written bytes do not hash
// to the expected digest; ErrSizeMismatch when they are too many or too few.
var (
	ErrDigestMismatch = errors.New("digest mismatch")
	ErrSizeMismatch   = errors.New("size mismatch")
)

// Writer streams one blob into ingest/. It keeps a partial ingest on Close
// (so a later Writer for the same digest resumes from Offset), removes it on
// Abort, and publishes the blob on Commit. Only one Writer per digest exists
// at a time in a process; a second waits.
type Writer struct {
	s      *Store
	d      v1.Hash
	size   int64
	f      *os.File
	h      hash.Hash
	n      int64
	closed bool
}

// Writer opens (or resumes) the ingest of blob d of the given size (< 0:
// unknown). It waits while another Writer holds d. When d is already
// committed the error wraps errdefs.ErrAlreadyExists.
func (s *Store) Writer(ctx context.Context, d v1.Hash, size int64) (*Writer, error) {
	if err := checkDigest(d); err != nil {
		return nil, err
	}
	if err := s.lock(ctx, d); err != nil {
		return nil, err
	}
	if s.Has(d) {
		s.unlock(d)
		return nil, fmt.Errorf("blob %s: %w", d, errdefs.ErrAlreadyExists)
	}
	w, err := s.openIngest(d, size)
	if err != nil {
		s.unlock(d)
		return nil, err
	}
	return w, nil
}

func (s *Store) openIngest(d v1.Hash, size int64) (*Writer, error) {
	f, err := os.OpenFile(s.ingestPath(d), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("ingest %s: %w", d, wrapDisk(err))
	}
	w := &Writer{s: s, d: d, size: size, f: f, h: sha256.New()}
	// Re-hash what a previous attempt left, so the digest still covers every byte.
	n, err := io.Copy(w.h, f)
	if err != nil || (size >= 0 && n > size) {
		if err := w.Reset(); err != nil {
			f.Close()
			return nil, err
		}
		return w, nil
	}
	w.n = n
	return w, nil
}

// Offset is how many bytes of the blob are already in the ingest (resume
// from here with an HTTP Range request).
func (w *Writer) Offset() int64 { return w.n }

// Reset discards any partial content and starts the blob over.
func (w *Writer) Reset() error {
	if err := w.f.Truncate(0); err != nil {
		return fmt.Errorf("ingest %s: %w", w.d, wrapDisk(err))
	}
	if _, err := w.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("ingest %s: %w", w.d, err)
	}
	w.h.Reset()
	w.n = 0
	return nil
}

// Write appends p, hashing as it goes. Writing past the declared size fails.
func (w *Writer) Write(p []byte) (int, error) {
	if w.size >= 0 && w.n+int64(len(p)) > w.size {
		return 0, fmt.Errorf("blob %s: more than the %d bytes declared: %w", w.d, w.size, ErrSizeMismatch)
	}
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("ingest %s: %w", w.d, wrapDisk(err))
	}
	return n, nil
}

// Commit verifies size and digest, fsyncs, and renames the blob into place.
// On a mismatch the ingest is removed (it can never become valid).
func (w *Writer) Commit() error {
	defer func() { _ = w.Close() }()
	if w.size >= 0 && w.n != w.size {
		w.Abort()
		return fmt.Errorf("blob %s: got %d bytes, want %d (truncated): %w", w.d, w.n, w.size, ErrSizeMismatch)
	}
	if got := hex.EncodeToString(w.h.Sum(nil)); got != w.d.Hex {
		w.Abort()
		return fmt.Errorf("blob %s: content hashes to sha256:%s (corrupt): %w", w.d, got, ErrDigestMismatch)
	}
	if !w.s.noSync {
		if err := w.f.Sync(); err != nil {
			return fmt.Errorf("ingest %s: fsync: %w", w.d, wrapDisk(err))
		}
	}
	if err := w.f.Chmod(0o400); err != nil {
		return fmt.Errorf("ingest %s: %w", w.d, err)
	}
	if err := os.Rename(w.s.ingestPath(w.d), w.s.Path(w.d)); err != nil {
		return fmt.Errorf("commit %s: %w", w.d, err)
	}
	if !w.s.noSync {
		syncDir(filepath.Dir(w.s.Path(w.d)))
	}
	return nil
}

// Abort removes the partial ingest and releases the writer.
func (w *Writer) Abort() {
	_ = os.Remove(w.s.ingestPath(w.d))
	_ = w.Close()
}

// Close releases the writer, keeping any partial ingest for a later resume.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.f.Close()
	w.s.unlock(w.d)
	return err
}

func (s *Store) lock(ctx context.Context, d v1.Hash) error {
	for {
		s.mu.Lock()
		ch, held := s.locks[d]
		if !held {
			s.locks[d] = make(chan struct{})
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *Store) unlock(d v1.Hash) {
	s.mu.Lock()
	ch := s.locks[d]
	delete(s.locks, d)
	s.mu.Unlock()
	if ch != nil {
		close(ch)
	}
}

// ErrDiskFull is wrapped when the disk holding the store has no space left.
var ErrDiskFull = errors.New("no space left on the cache's disk: free space (ferry image prune -a) and retry")

func wrapDisk(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrDiskFull, errdefs.ErrUnavailable)
	}
	return err
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// DiskError wraps err with ErrDiskFull when it is ENOSPC/EDQUOT.
func DiskError(err error) error { return wrapDisk(err) }

// RemoveIngest drops the partial ingest of d unless a Writer holds it.
func (s *Store) RemoveIngest(d v1.Hash) {
	if checkDigest(d) != nil {
		return
	}
	s.mu.Lock()
	_, held := s.locks[d]
	s.mu.Unlock()
	if !held {
		_ = os.Remove(s.ingestPath(d))
	}
}

// Demote moves committed blob d back to ingest/ as a complete partial
// download: it is no longer visible as a blob, and a later Writer for d
// finds all its bytes (Offset == size) and only has to verify and commit.
// The caller guarantees no Writer or reader uses d.
func (s *Store) Demote(d v1.Hash) error {
	if err := checkDigest(d); err != nil {
		return err
	}
	if err := os.Rename(s.Path(d), s.ingestPath(d)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("demote blob %s: %w", d, err)
	}
	_ = os.Chmod(s.ingestPath(d), 0o600)
	return nil
}
