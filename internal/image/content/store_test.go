package content

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/errdefs"
)

func digestOf(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

func TestIngestVerifies(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("hello blob")
	d := digestOf(data)
	for name, tc := range map[string]struct {
		d    v1.Hash
		size int64
		want error
	}{
		"wrong digest": {digestOf([]byte("other")), int64(len(data)), ErrDigestMismatch},
		"short size":   {d, int64(len(data)) + 1, ErrSizeMismatch},
		"long size":    {d, int64(len(data)) - 1, ErrSizeMismatch},
	} {
		if err := s.Ingest(ctx, tc.d, tc.size, bytes.NewReader(data)); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
		if s.Has(tc.d) {
			t.Errorf("%s: a bad blob became visible", name)
		}
	}
	if err := s.Ingest(ctx, d, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := s.Ingest(ctx, d, int64(len(data)), bytes.NewReader(data)); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("second ingest: %v", err)
	}
	if err := s.Verify(d); err != nil {
		t.Error(err)
	}
	ents, _ := os.ReadDir(filepath.Join(s.Dir(), "ingest"))
	if len(ents) != 0 {
		t.Errorf("ingest not empty: %d", len(ents))
	}
}

func TestResumeAndStaleIngest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, _ := Open(dir)
	data := bytes.Repeat([]byte("0123456789"), 1000)
	d := digestOf(data)
	w, err := s.Writer(ctx, d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data[:4000])
	w.Close() // interrupted: partial kept
	os.WriteFile(filepath.Join(dir, "ingest", "junk"), []byte("x"), 0o644)
	old := filepath.Join(dir, "ingest", "sha256-"+digestOf([]byte("old")).Hex)
	os.WriteFile(old, []byte("x"), 0o644)
	os.Chtimes(old, time.Now().Add(-2*StaleIngest), time.Now().Add(-2*StaleIngest))

	s2, _ := Open(dir) // reopen: junk and stale removed, resumable kept
	ents, _ := os.ReadDir(filepath.Join(dir, "ingest"))
	if len(ents) != 1 {
		t.Fatalf("ingest has %d entries, want the one resumable", len(ents))
	}
	w, err = s2.Writer(ctx, d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != 4000 {
		t.Fatalf("offset %d", w.Offset())
	}
	w.Write(data[4000:])
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if !s2.Has(d) {
		t.Fatal("not committed")
	}
}

func TestWriterExclusive(t *testing.T) {
	s, _ := Open(t.TempDir())
	data := []byte("x")
	d := digestOf(data)
	w, _ := s.Writer(context.Background(), d, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Writer(ctx, d, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second writer: %v", err)
	}
	w.Write(data)
	w.Commit()
	if _, err := s.Writer(context.Background(), d, 1); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("after commit: %v", err)
	}
}
