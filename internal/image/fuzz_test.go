package image

import (
	"bytes"
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ferryvm/ferry/internal/testimage"
)

func manifestSeeds(f *testing.F) {
	img, err := testimage.Layered()
	if err != nil {
		f.Fatal(err)
	}
	raw, _ := img.RawManifest()
	f.Add(raw)
	idx, err := testimage.Index("linux/amd64", "linux/arm64/v8")
	if err != nil {
		f.Fatal(err)
	}
	raw, _ = idx.RawManifest()
	f.Add(raw)
	f.Add([]byte(`{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}`))
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":-1,"digest":"sha256:` + zero64 + `"},"layers":[]}`))
	f.Add([]byte(`{"schemaVersion":2,"manifests":null}`))
	f.Add([]byte(`null`))
}

// FuzzParseManifest: parsing never panics, and whatever is accepted is
// well-formed (sha256 digests, non-negative sizes, known media types).
func FuzzParseManifest(f *testing.F) {
	manifestSeeds(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, _, err := ParseManifest(raw)
		if err != nil {
			return
		}
		for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			if d.Size < 0 || len(d.Digest.Hex) != 64 {
				t.Fatalf("accepted bad descriptor %+v", d)
			}
		}
		if !configTypes[m.Config.MediaType] {
			t.Fatalf("accepted config type %q", m.Config.MediaType)
		}
	})
}

// FuzzParseIndex: parsing never panics; accepted entries are well-formed.
func FuzzParseIndex(f *testing.F) {
	manifestSeeds(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		idx, _, err := ParseIndex(raw)
		if err != nil {
			return
		}
		for _, d := range idx.Manifests {
			if d.Size < 0 || len(d.Digest.Hex) != 64 {
				t.Fatalf("accepted bad descriptor %+v", d)
			}
		}
		_, _ = selectPlatform("fuzz", idx, HostPlatform())
	})
}

// FuzzLoad: Load never panics, and a failed load leaves the cache unchanged.
// Run it with -fuzzminimizetime 0: minimizing each new input (a store
// operation per step) otherwise stalls progress for minutes.
func FuzzLoad(f *testing.F) {
	img, err := testimage.Random(130, 2, 512)
	if err != nil {
		f.Fatal(err)
	}
	var docker bytes.Buffer
	tag, _ := name.NewTag("fuzz/img:1")
	if err := tarball.Write(tag, img, &docker); err != nil {
		f.Fatal(err)
	}
	f.Add(docker.Bytes())
	// An OCI layout archive as Save writes it.
	s, _ := newStore(f)
	if _, err := s.Load(context.Background(), bytes.NewReader(docker.Bytes())); err != nil {
		f.Fatal(err)
	}
	var oci bytes.Buffer
	if err := s.Save(context.Background(), &oci, []string{"fuzz/img:1"}); err != nil {
		f.Fatal(err)
	}
	f.Add(oci.Bytes())
	f.Add([]byte{})
	f.Add([]byte("not a tar"))
	// One store for every input: a failed load must leave it exactly as it was.
	st, _ := newStore(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		before := blobCount(t, st)
		nimg := len(must[[]Summary](t)(st.List(context.Background())))
		if _, err := st.Load(context.Background(), bytes.NewReader(data)); err == nil {
			return
		}
		if n := blobCount(t, st); n != before {
			t.Fatalf("failed load changed the blob count from %d to %d", before, n)
		}
		if n := len(must[[]Summary](t)(st.List(context.Background()))); n != nimg {
			t.Fatalf("failed load changed the image count from %d to %d", nimg, n)
		}
	})
}
