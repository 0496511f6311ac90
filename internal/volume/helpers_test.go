package volume

import (
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

type env struct {
	dir string // the volumes directory
	db  *bolt.DB
	s   *Store
}

func openDB(t testing.TB, dir string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, "meta.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// newEnv opens a store in a temp data root (or in root when given).
func newEnv(t testing.TB, root string, opts ...Option) *env {
	t.Helper()
	if root == "" {
		root = t.TempDir()
	}
	db := openDB(t, root)
	t.Cleanup(func() { db.Close() })
	dir := filepath.Join(root, "volumes")
	opts = append([]Option{WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, opts...)
	s, err := Open(context.Background(), dir, db, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return &env{dir: dir, db: db, s: s}
}

func yes() *bool { b := true; return &b }
func no() *bool  { b := false; return &b }

func (e *env) create(t testing.TB, name string, size int64, enc *bool) Volume {
	t.Helper()
	v, err := e.s.Create(context.Background(), CreateRequest{App: "a", Name: name, Size: size, Encrypted: enc})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func fileHash(t testing.TB, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func writeAt(t testing.TB, p string, off int64, data []byte) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
}

func readAt(t testing.TB, p string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

func sha256sum(b []byte) [32]byte { return sha256.Sum256(b) }
