package cache

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/build/layer"
)

type fakeLeases struct{ removed []string }

func (f *fakeLeases) RemoveLease(ctx context.Context, id string) error {
	f.removed = append(f.removed, id)
	return nil
}

type blobSet map[v1.Hash]bool

func (b blobSet) Has(d v1.Hash) bool { return b[d] }

func TestKeys(t *testing.T) {
	a := Key("p", "ab", "c")
	if a == Key("p", "a", "bc") || a == Key("q", "ab", "c") || a != Key("p", "ab", "c") {
		t.Error("keys collide or are unstable")
	}
}

func TestStore(t *testing.T) {
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	leases := &fakeLeases{}
	d1 := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("1", 64)}
	d2 := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("2", 64)}
	blobs := blobSet{d1: true, d2: true}
	s, err := Open(db, leases, blobs)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Get("k1"); ok {
		t.Fatal("hit on an empty cache")
	}
	s.Put("k1", Record{Layer: layer.Blob{Digest: d1, DiffID: d1, Size: 10}, Step: "RUN a"})
	s.Put("k2", Record{Layer: layer.Blob{Digest: d2, DiffID: d2, Size: 20}})
	if r, ok := s.Get("k1"); !ok || r.Layer.Digest != d1 {
		t.Fatalf("get = %+v %v", r, ok)
	}
	delete(blobs, d2) // its blob was collected: a miss, and the record goes
	if _, ok := s.Get("k2"); ok {
		t.Fatal("a record without its blob hit")
	}
	time.Sleep(5 * time.Millisecond)
	cut := time.Now()
	s.Put("k3", Record{Layer: layer.Blob{Digest: d1, DiffID: d1, Size: 5}})
	blobs[d1] = true
	n, size, err := s.Prune(context.Background(), cut)
	if err != nil || n != 1 || size != 10 {
		t.Fatalf("prune = %d %d %v", n, size, err)
	}
	if len(leases.removed) != 1 || leases.removed[0] != "build-cache:k1" {
		t.Errorf("leases removed %v", leases.removed)
	}
	if _, ok := s.Get("k3"); !ok {
		t.Error("prune removed a recent record")
	}
}
