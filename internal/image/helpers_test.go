package image

import (
	"context"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/paths"
)

func newStore(t testing.TB, opts ...Option) (*Store, paths.Root) {
	t.Helper()
	return newStoreAt(t, t.TempDir(), opts...)
}

func newStoreAt(t testing.TB, dir string, opts ...Option) (*Store, paths.Root) {
	t.Helper()
	root := paths.Root(dir)
	db, err := bbolt.Open(filepath.Join(string(root), "meta.db"), 0o600, &bbolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := Open(context.Background(), root, db, append([]Option{WithoutFsync()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s, root
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func emptyIndex() (v1.ImageIndex, error) { return empty.Index, nil }
