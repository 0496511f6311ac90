package testimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Epoch is the modification time of every file in test layers.
var Epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// File is one entry of a test layer.
type File struct {
	Path     string // relative, e.g. "etc/passwd"
	Mode     int64  // permission bits (0644 when zero for files, 0755 for dirs)
	Type     byte   // tar.TypeReg (default), tar.TypeDir, tar.TypeSymlink, tar.TypeLink
	Linkname string
	Data     []byte
	UID, GID int
}

// Compression of a test layer.
type Compression string

// Layer compressions.
const (
	Gzip         Compression = "gzip"
	Zstd         Compression = "zstd"
	Uncompressed Compression = "none"
)

// Tar renders files as a tar stream (sorted by path, fixed times).
func Tar(files []File) []byte {
	fs := append([]File(nil), files...)
	sort.SliceStable(fs, func(i, j int) bool { return fs[i].Path < fs[j].Path })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range fs {
		h := &tar.Header{Name: f.Path, Mode: f.Mode, Typeflag: f.Type, Linkname: f.Linkname,
			Uid: f.UID, Gid: f.GID, ModTime: Epoch, Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		switch h.Typeflag {
		case tar.TypeReg:
			h.Size = int64(len(f.Data))
			if h.Mode == 0 {
				h.Mode = 0o644
			}
		case tar.TypeDir:
			if h.Mode == 0 {
				h.Mode = 0o755
			}
		case tar.TypeSymlink:
			h.Mode = 0o777
		}
		if err := tw.WriteHeader(h); err != nil {
			panic(fmt.Sprintf("testimage: tar %s: %v", f.Path, err))
		}
		if h.Typeflag == tar.TypeReg {
			_, _ = tw.Write(f.Data)
		}
	}
	_ = tw.Close()
	return buf.Bytes()
}

// Layer builds a layer of files with the given compression (OCI media types).
func Layer(files []File, c Compression) (v1.Layer, error) {
	return LayerFromTar(Tar(files), c, -1)
}

// LayerFromTar builds a layer from an uncompressed tar stream; level is the
// compression level (-1: default).
func LayerFromTar(tb []byte, c Compression, level int) (v1.Layer, error) {
	open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(tb)), nil }
	opts := []tarball.LayerOption{tarball.WithCompressedCaching}
	switch c {
	case Zstd:
		opts = append(opts, tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd))
	case Uncompressed:
		return uncompressedLayer(tb), nil
	default:
		opts = append(opts, tarball.WithMediaType(types.OCILayer))
	}
	if level != -1 {
		opts = append(opts, tarball.WithCompressionLevel(level))
	}
	return tarball.LayerFromOpener(open, opts...)
}

// Image assembles layers into an OCI image for platform (linux/amd64 when
// zero) with the given config (Cmd, Env, User…).
func Image(cfg v1.Config, platform v1.Platform, layers ...v1.Layer) (v1.Image, error) {
	if platform.OS == "" {
		platform = v1.Platform{OS: "linux", Architecture: "amd64"}
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = platform.OS, platform.Architecture, platform.Variant
	cf.Config = cfg
	cf.Created = v1.Time{Time: Epoch}
	return mutate.ConfigFile(img, cf)
}
