package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/rootfs"
)

// fakeRootfs knows one image, "app", whose base is built on Ensure.
type fakeRootfs struct{ built bool }

const fakeBase = "ext4 bytes"

func (f *fakeRootfs) check(ref string) error {
	if ref != "app" && ref != "registry.local/app:1" {
		return fmt.Errorf("image %s: %w", ref, errdefs.ErrNotFound)
	}
	return nil
}

func (f *fakeRootfs) info() RootfsBase {
	if !f.built {
		return RootfsBase{Image: "sha256:aa"}
	}
	return RootfsBase{Image: "sha256:aa", Built: true, Path: "/r/aa.ext4", Size: int64(len(fakeBase))}
}

func (f *fakeRootfs) EnsureRootfs(_ context.Context, ref string) (RootfsBase, error) {
	if err := f.check(ref); err != nil {
		return RootfsBase{}, err
	}
	f.built = true
	return f.info(), nil
}

func (f *fakeRootfs) InspectRootfs(_ context.Context, ref string) (RootfsBase, error) {
	return f.info(), f.check(ref)
}

func (f *fakeRootfs) OpenRootfs(_ context.Context, ref string) (io.ReadCloser, RootfsBase, error) {
	if err := f.check(ref); err != nil {
		return nil, RootfsBase{}, err
	}
	if !f.built {
		return nil, f.info(), fmt.Errorf("not built: %w", errdefs.ErrNotFound)
	}
	return io.NopCloser(strings.NewReader(fakeBase)), f.info(), nil
}

func (f *fakeRootfs) DiskUsage(context.Context) (SystemDF, error) {
	return SystemDF{ContentBytes: 7, Bases: []rootfs.BaseUsage{{Digest: "sha256:aa"}}}, nil
}

func TestRootfsAPI(t *testing.T) {
	s := NewServer(nil)
	svc := &fakeRootfs{}
	RegisterRootfs(s, svc)
	c := serve(t, s, "")
	ctx := context.Background()

	if b, err := c.InspectRootfs(ctx, "registry.local/app:1"); err != nil || b.Built {
		t.Fatalf("inspect before build = %+v, %v", b, err)
	}
	if _, err := c.DownloadRootfs(ctx, "app", io.Discard); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("download before build: %v, want not found", err)
	}
	if _, err := c.EnsureRootfs(ctx, "nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("ensure unknown image: %v, want not found", err)
	}
	b, err := c.EnsureRootfs(ctx, "app")
	if err != nil || !b.Built || b.Path != "/r/aa.ext4" {
		t.Fatalf("ensure = %+v, %v", b, err)
	}
	var buf bytes.Buffer
	if n, err := c.DownloadRootfs(ctx, "registry.local/app:1", &buf); err != nil || n != int64(len(fakeBase)) || buf.String() != fakeBase {
		t.Fatalf("download = %d %q, %v", n, buf.String(), err)
	}
	df, err := c.SystemDF(ctx)
	if err != nil || df.ContentBytes != 7 || len(df.Bases) != 1 {
		t.Fatalf("df = %+v, %v", df, err)
	}
}
