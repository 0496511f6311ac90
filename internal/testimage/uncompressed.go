package testimage

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// rawLayer is an uncompressed OCI layer (digest == diff ID).
type rawLayer struct {
	b []byte
	h v1.Hash
}

func uncompressedLayer(b []byte) v1.Layer {
	s := sha256.Sum256(b)
	return &rawLayer{b: b, h: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}}
}

func (l *rawLayer) Digest() (v1.Hash, error)            { return l.h, nil }
func (l *rawLayer) DiffID() (v1.Hash, error)            { return l.h, nil }
func (l *rawLayer) Size() (int64, error)                { return int64(len(l.b)), nil }
func (l *rawLayer) MediaType() (types.MediaType, error) { return types.OCIUncompressedLayer, nil }
func (l *rawLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.b)), nil
}
func (l *rawLayer) Uncompressed() (io.ReadCloser, error) { return l.Compressed() }
