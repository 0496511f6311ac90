package layer

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
)

// MediaType is the media type of the layers a build writes.
const MediaType = types.OCILayer

// Blob is a layer written to the content store.
type Blob struct {
	Digest v1.Hash `json:"digest"`  // of the gzip blob
	DiffID v1.Hash `json:"diff_id"` // of the uncompressed tar
	Size   int64   `json:"size"`    // compressed bytes
	// Entries counts the tar entries; an empty layer has none.
	Entries int `json:"entries"`
}

// Descriptor is the blob's manifest entry.
func (b Blob) Descriptor() v1.Descriptor {
	return v1.Descriptor{MediaType: MediaType, Digest: b.Digest, Size: b.Size}
}

// Sink stores a blob whose digest is known only once written, holding it
// under lease so garbage collection keeps it.
type Sink interface {
	PutBlob(ctx context.Context, lease string, r io.Reader) (v1.Hash, int64, error)
}

// Normalizer rewrites headers so a layer is reproducible.
type Normalizer struct {
	// Epoch, when set, clamps later mtimes to it (SOURCE_DATE_EPOCH).
	Epoch *time.Time
}

// Header normalizes h in place.
func (n Normalizer) Header(h *tar.Header) {
	h.Format = tar.FormatPAX
	h.Uname, h.Gname = "", ""
	h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
	if n.Epoch != nil && h.ModTime.After(*n.Epoch) {
		h.ModTime = *n.Epoch
	}
	h.ModTime = h.ModTime.Truncate(time.Second)
	// PAX records other than xattrs vary by tool; keep only xattrs.
	if len(h.PAXRecords) > 0 {
		keep := map[string]string{}
		for k, v := range h.PAXRecords {
			if len(k) > len("SCHILY.xattr.") && k[:len("SCHILY.xattr.")] == "SCHILY.xattr." {
				keep[k] = v
			}
		}
		h.PAXRecords = keep
		if len(keep) == 0 {
			h.PAXRecords = nil
		}
	}
	h.Xattrs = nil //nolint:staticcheck // replaced by PAXRecords, which carry the same data
}

// TarWriter is the tar writer a layer's content is written to; every
// header passes through the Normalizer.
type TarWriter struct {
	tw      *tar.Writer
	n       Normalizer
	entries int
}

// WriteHeader normalizes and writes h.
func (w *TarWriter) WriteHeader(h *tar.Header) error {
	w.n.Header(h)
	w.entries++
	return w.tw.WriteHeader(h)
}

// Write writes file content after a header.
func (w *TarWriter) Write(b []byte) (int, error) { return w.tw.Write(b) }

// Write streams the tar that fill writes through gzip into sink, under
// lease, and returns the blob. Nothing is buffered beyond a pipe.
func Write(ctx context.Context, sink Sink, lease string, n Normalizer, fill func(*TarWriter) error) (Blob, error) {
	pr, pw := io.Pipe()
	var entries int
	diff := sha256.New()
	go func() {
		zw, _ := gzip.NewWriterLevel(pw, gzip.DefaultCompression)
		tw := &TarWriter{tw: tar.NewWriter(io.MultiWriter(zw, diff)), n: n}
		err := fill(tw)
		if err == nil {
			err = tw.tw.Close()
		}
		if err == nil {
			err = zw.Close()
		}
		entries = tw.entries
		_ = pw.CloseWithError(err)
	}()
	d, size, err := sink.PutBlob(ctx, lease, pr)
	_ = pr.CloseWithError(fmt.Errorf("layer sink stopped"))
	if err != nil {
		return Blob{}, fmt.Errorf("write layer: %w", err)
	}
	return Blob{Digest: d, DiffID: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(diff.Sum(nil))}, Size: size, Entries: entries}, nil
}

// Rewrite copies the tar stream r into a layer, normalizing its headers
// (the way a RUN step's diff from the guest becomes a layer).
func Rewrite(ctx context.Context, sink Sink, lease string, n Normalizer, r io.Reader) (Blob, error) {
	return Write(ctx, sink, lease, n, func(w *TarWriter) error {
		tr := tar.NewReader(r)
		buf := make([]byte, 256<<10)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("read layer tar: %w", err)
			}
			if err := w.WriteHeader(h); err != nil {
				return err
			}
			if h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeRegA { //nolint:staticcheck // old writers still emit it
				if _, err := io.CopyBuffer(w, tr, buf); err != nil {
					return err
				}
			}
		}
	})
}
