package cli

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
)

func TestRunMountFlags(t *testing.T) {
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	no := false
	f := runMountFlags{
		volumes: []string{"data:/data", "data2:/ro:ro", "/host/dir:/h", "./rel:/r", "../up:/u:ro,z", "/anon"},
		mounts: []string{"type=volume,source=v,target=/v,readonly,volume-size=2g,volume-encrypted=false",
			"type=bind,src=/etc,dst=/e,ro=true", "type=tmpfs,target=/t,tmpfs-size=64m", "target=/a"},
		tmpfs: []string{"/run:size=16m", "/x"},
	}
	got, err := f.config()
	if err != nil {
		t.Fatal(err)
	}
	want := []types.Mount{
		{Type: types.MountVolume, Volume: "data", Path: "/data"},
		{Type: types.MountVolume, Volume: "data2", Path: "/ro", ReadOnly: true},
		{Type: types.MountBind, Source: "/host/dir", Path: "/h"},
		{Type: types.MountBind, Source: filepath.Join(cwd, "rel"), Path: "/r"},
		{Type: types.MountBind, Source: filepath.Join(filepath.Dir(cwd), "up"), Path: "/u", ReadOnly: true},
		{Type: types.MountVolume, Path: "/anon"},
		{Type: types.MountVolume, Volume: "v", Path: "/v", ReadOnly: true, SizeMB: 2048, Encrypted: &no},
		{Type: types.MountBind, Source: "/etc", Path: "/e", ReadOnly: true},
		{Type: types.MountTmpfs, Path: "/t", SizeMB: 64},
		{Type: types.MountVolume, Path: "/a"},
		{Type: types.MountTmpfs, Path: "/run", SizeMB: 16},
		{Type: types.MountTmpfs, Path: "/x"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("mounts:\n got %+v\nwant %+v", got, want)
	}
	for _, bad := range []runMountFlags{
		{volumes: []string{"data:rel"}},
		{volumes: []string{"data:/d:rx"}},
		{volumes: []string{"a:b:c:d"}},
		{volumes: []string{":/d"}},
		{mounts: []string{"type=nfs,target=/d"}},
		{mounts: []string{"type=bind,target=/d"}},
		{mounts: []string{"type=volume,source=/abs,target=/d"}},
		{mounts: []string{"source=x"}},
		{mounts: []string{"target=/d,colour=red"}},
		{tmpfs: []string{"/t:size=lots"}},
		{tmpfs: []string{"/t:uid=0"}},
	} {
		if _, err := bad.config(); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%+v: %v, want an invalid argument", bad, err)
		}
	}
}
