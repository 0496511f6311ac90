package content

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// StaleIngest is how long a partial ingest is kept for resuming before Open
// removes it.
const StaleIngest = 24 * time.Hour

// Store is a content-addressed blob store in an OCI image layout directory.
// It is safe for concurrent use within one process; one process owns a
// directory (the daemon's root lock guarantees it).
type Store struct {
	dir    string
	noSync bool

	mu    sync.Mutex
	locks map[v1.Hash]chan struct{} // digest → held while a Writer is open
}

// Option configures a Store.
type Option func(*Store)

// WithoutFsync skips fsync on commit (benchmarks and throwaway roots only).
func WithoutFsync() Option { return func(s *Store) { s.noSync = true } }

// Open opens (creating if needed) the layout at dir and removes ingests that
// are not resumable or older than StaleIngest.
func Open(dir string, opts ...Option) (*Store, error) {
	s := &Store{dir: dir, locks: map[v1.Hash]chan struct{}{}}
	for _, o := range opts {
		o(s)
	}
	for _, d := range []string{filepath.Join(dir, "blobs", "sha256"), s.ingestDir()} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("open content store: %w", err)
		}
	}
	layout := filepath.Join(dir, "oci-layout")
	if _, err := os.Stat(layout); errors.Is(err, fs.ErrNotExist) {
		if err := os.WriteFile(layout, []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o600); err != nil {
			return nil, fmt.Errorf("open content store: %w", err)
		}
	}
	index := filepath.Join(dir, "index.json")
	if _, err := os.Stat(index); errors.Is(err, fs.ErrNotExist) {
		if err := os.WriteFile(index, []byte(`{"schemaVersion":2,"manifests":[]}`), 0o600); err != nil {
			return nil, fmt.Errorf("open content store: %w", err)
		}
	}
	if err := s.cleanIngest(); err != nil {
		return nil, err
	}
	return s, nil
}

// Dir is the layout's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) ingestDir() string { return filepath.Join(s.dir, "ingest") }

// Path is where the blob d lives once committed.
func (s *Store) Path(d v1.Hash) string {
	return filepath.Join(s.dir, "blobs", d.Algorithm, d.Hex)
}

func (s *Store) ingestPath(d v1.Hash) string {
	return filepath.Join(s.ingestDir(), d.Algorithm+"-"+d.Hex)
}

func (s *Store) cleanIngest() error {
	ents, err := os.ReadDir(s.ingestDir())
	if err != nil {
		return fmt.Errorf("open content store: %w", err)
	}
	for _, e := range ents {
		info, err := e.Info()
		resumable := err == nil && info.Mode().IsRegular() && strings.HasPrefix(e.Name(), "sha256-") &&
			time.Since(info.ModTime()) < StaleIngest
		if !resumable {
			if err := os.RemoveAll(filepath.Join(s.ingestDir(), e.Name())); err != nil {
				return fmt.Errorf("open content store: remove stale ingest: %w", err)
			}
		}
	}
	return nil
}

// Info returns the size of the committed blob d, or an error wrapping
// errdefs.ErrNotFound.
func (s *Store) Info(d v1.Hash) (int64, error) {
	if err := checkDigest(d); err != nil {
		return 0, err
	}
	fi, err := os.Stat(s.Path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("blob %s: %w", d, errdefs.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("blob %s: %w", d, err)
	}
	return fi.Size(), nil
}

// Has reports whether blob d is committed.
func (s *Store) Has(d v1.Hash) bool {
	_, err := s.Info(d)
	return err == nil
}

// Open opens the committed blob d for reading.
func (s *Store) Open(d v1.Hash) (*os.File, error) {
	if err := checkDigest(d); err != nil {
		return nil, err
	}
	f, err := os.Open(s.Path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", d, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	return f, nil
}

// ReadAll reads a (small) committed blob, such as a manifest or config.
func (s *Store) ReadAll(d v1.Hash) ([]byte, error) {
	f, err := s.Open(d)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// Delete removes the committed blob d (not found is not an error).
func (s *Store) Delete(d v1.Hash) error {
	if err := checkDigest(d); err != nil {
		return err
	}
	if err := os.Remove(s.Path(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete blob %s: %w", d, err)
	}
	return nil
}

// Walk calls fn for every committed blob.
func (s *Store) Walk(fn func(d v1.Hash, size int64) error) error {
	root := filepath.Join(s.dir, "blobs", "sha256")
	ents, err := os.ReadDir(root)
	if err != nil {
		return fmt.Errorf("walk blobs: %w", err)
	}
	for _, e := range ents {
		d, err := v1.NewHash("sha256:" + e.Name())
		if err != nil {
			continue // not a blob (a stray file); GC leaves it alone
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		if err := fn(d, info.Size()); err != nil {
			return err
		}
	}
	return nil
}

// Ingest writes r as blob d of the given size (size < 0: unknown) and
// commits it, verifying digest and size. A blob already present is not
// rewritten: the error then wraps errdefs.ErrAlreadyExists.
func (s *Store) Ingest(ctx context.Context, d v1.Hash, size int64, r io.Reader) error {
	w, err := s.Writer(ctx, d, size)
	if err != nil {
		return err
	}
	defer func() { _ = w.Close() }()
	if err := w.Reset(); err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Abort()
		return err
	}
	if err := w.Commit(); err != nil {
		return err
	}
	return nil
}

func checkDigest(d v1.Hash) error {
	if d.Algorithm != "sha256" || len(d.Hex) != 64 || strings.Trim(d.Hex, "0123456789abcdef") != "" {
		return fmt.Errorf("digest %q: %w", d.String(), errdefs.ErrInvalidArgument)
	}
	return nil
}

// Verify re-hashes the committed blob d and fails if it does not match.
func (s *Store) Verify(d v1.Hash) error {
	f, err := s.Open(d)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("verify %s: %w", d, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.Hex {
		return fmt.Errorf("blob %s: content hashes to sha256:%s: %w", d, got, ErrDigestMismatch)
	}
	return nil
}

// Root is the OCI image layout directory the store keeps.
func (s *Store) Root() string { return s.dir }
