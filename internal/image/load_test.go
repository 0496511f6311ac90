package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/testimage"
)

// savedArchive pulls img into a store and returns `Save` output for ref.
func savedArchive(t *testing.T, img v1.Image, repo string) ([]byte, string) {
	t.Helper()
	host := testimage.Registry(t)
	ref := testimage.Push(t, host, repo, img)
	s, _ := newStore(t)
	must[*PullResult](t)(s.Pull(context.Background(), ref))
	var buf bytes.Buffer
	if err := s.Save(context.Background(), &buf, []string{ref}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), must[string](t)(CanonicalString(ref))
}

func TestSaveLoadRoundTrip(t *testing.T) {
	ctx := context.Background()
	img := must[v1.Image](t)(testimage.Layered())
	arc, ref := savedArchive(t, img, "rt/layered:v1")
	s, _ := newStore(t)
	loaded, err := s.Load(ctx, bytes.NewReader(arc))
	if err != nil {
		t.Fatal(err)
	}
	want := must[v1.Hash](t)(img.Digest())
	if len(loaded) != 1 || loaded[0].ID != want || len(loaded[0].Refs) != 1 || loaded[0].Refs[0] != ref {
		t.Fatalf("loaded %+v, want %s named %s", loaded, want, ref)
	}
	if det := must[*Details](t)(s.Inspect(ctx, ref)); len(det.Layers) != 3 {
		t.Fatalf("layers %d", len(det.Layers))
	}
	// Loading the same archive again is a no-op.
	if _, err := s.Load(ctx, bytes.NewReader(arc)); err != nil {
		t.Fatal(err)
	}
}

func TestLoadDockerSave(t *testing.T) {
	ctx := context.Background()
	img := must[v1.Image](t)(testimage.Random(30, 3, 8192))
	tag := must[name.Tag](t)(name.NewTag("example.com/app:7"))
	var buf bytes.Buffer
	if err := tarball.Write(tag, img, &buf); err != nil {
		t.Fatal(err)
	}
	s, _ := newStore(t)
	loaded, err := s.Load(ctx, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 1 || len(loaded[0].Refs) != 1 || loaded[0].Refs[0] != "example.com/app:7" {
		t.Fatalf("loaded %+v", loaded)
	}
	det := must[*Details](t)(s.Inspect(ctx, "example.com/app:7"))
	if det.ConfigDigest != must[v1.Hash](t)(img.ConfigName()) {
		t.Errorf("config digest %s", det.ConfigDigest)
	}
	cf := must[*v1.ConfigFile](t)(img.ConfigFile())
	for i, l := range det.Layers {
		if l.DiffID != cf.RootFS.DiffIDs[i] {
			t.Errorf("layer %d diff id", i)
		}
	}
}

// rewriteTar copies a tar, letting edit change each file's data (nil: drop it).
func rewriteTar(t *testing.T, in []byte, edit func(name string, data []byte) []byte) []byte {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(in))
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		if h.Typeflag == tar.TypeReg {
			data = edit(h.Name, data)
			if data == nil {
				continue
			}
			h.Size = int64(len(data))
		}
		_ = tw.WriteHeader(h)
		_, _ = tw.Write(data)
	}
	_ = tw.Close()
	return out.Bytes()
}

func TestLoadMalformedLeavesCacheUnchanged(t *testing.T) {
	img := must[v1.Image](t)(testimage.Random(40, 2, 4096))
	arc, _ := savedArchive(t, img, "bad/img:1")
	layers := must[[]v1.Layer](t)(img.Layers())
	l1 := "blobs/sha256/" + must[v1.Hash](t)(layers[1].Digest()).Hex
	cases := map[string][]byte{
		"garbage":   []byte("this is not a tar file at all, not even close......"),
		"truncated": arc[:len(arc)/2],
		"empty tar": rewriteTar(t, arc, func(string, []byte) []byte { return nil }),
		"corrupt blob": rewriteTar(t, arc, func(n string, d []byte) []byte {
			if n == l1 {
				d = append([]byte(nil), d...)
				d[len(d)/2] ^= 0xff
			}
			return d
		}),
		"missing blob": rewriteTar(t, arc, func(n string, d []byte) []byte {
			if n == l1 {
				return nil
			}
			return d
		}),
		"bad index": rewriteTar(t, arc, func(n string, d []byte) []byte {
			if n == "index.json" {
				return []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/x-nope","digest":"sha256:` + zero64 + `","size":1}]}`)
			}
			return d
		}),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			s, _ := newStore(t)
			_, err := s.Load(context.Background(), bytes.NewReader(data))
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("err = %v, want invalid argument", err)
			}
			if n := blobCount(t, s); n != 0 {
				t.Errorf("%d blobs left behind", n)
			}
			if l := must[[]Summary](t)(s.List(context.Background())); len(l) != 0 {
				t.Errorf("images listed: %+v", l)
			}
		})
	}
}
