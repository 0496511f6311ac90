package api

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/volume"
)

// TestVolumesAPI drives a real volume store through the API: create (Fly's
// size_gb and ferry's size_bytes), list, get by name and id prefix,
// extend, snapshots, restore from a snapshot, prune, remove, and the
// errors' codes.
func TestVolumesAPI(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := volume.Open(context.Background(), filepath.Join(dir, "volumes"), db)
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(nil)
	RegisterVolumes(s, st)
	c := serve(t, s, "")
	ctx := context.Background()
	plain := false

	v, err := c.CreateVolume(ctx, "web", CreateVolumeRequest{Name: "data", SizeBytes: 64 << 20, Encrypted: &plain, Labels: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	if v.Name != "data" || v.App != "web" || v.SizeBytes != 64<<20 || v.Encrypted || v.FSType != "ext4" || v.State != "created" || v.Labels["k"] != "v" {
		t.Fatalf("created %+v", v)
	}
	if _, err := c.CreateVolume(ctx, "web", CreateVolumeRequest{Name: "gb", SizeGB: 2, Encrypted: &plain}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateVolume(ctx, "web", CreateVolumeRequest{Name: "data", Encrypted: &plain}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("same name: %v", err)
	}
	if _, err := c.CreateVolume(ctx, "web", CreateVolumeRequest{Name: "../x"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad name: %v", err)
	}
	if _, err := c.CreateVolume(ctx, "web", CreateVolumeRequest{Name: "both", SizeGB: 1, SizeBytes: 1 << 30}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("both sizes: %v", err)
	}
	if l, err := c.ListVolumes(ctx, "web"); err != nil || len(l) != 2 || l[1].SizeGB != 2 {
		t.Fatalf("list: %+v %v", l, err)
	}
	if l, err := c.ListVolumes(ctx, "other"); err != nil || len(l) != 0 {
		t.Errorf("other app: %+v %v", l, err)
	}
	if g, err := c.GetVolume(ctx, "web", v.ID[:10]); err != nil || g.ID != v.ID {
		t.Errorf("get by prefix: %+v %v", g, err)
	}
	if _, err := c.GetVolume(ctx, "web", "nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("get missing: %v", err)
	}
	ext, err := c.ExtendVolume(ctx, "web", "data", ExtendVolumeRequest{SizeBytes: 96 << 20})
	if err != nil || ext.Volume.SizeBytes != 96<<20 || ext.NeedsRestart {
		t.Fatalf("extend: %+v %v", ext, err)
	}
	snap, err := c.CreateSnapshot(ctx, "web", "data")
	if err != nil || snap.VolumeID != v.ID || snap.Status != "created" || snap.Size != 96<<20 {
		t.Fatalf("snapshot: %+v %v", snap, err)
	}
	if l, err := c.ListSnapshots(ctx, "web", "data"); err != nil || len(l) != 1 {
		t.Errorf("snapshots: %+v %v", l, err)
	}
	r, err := c.CreateVolume(ctx, "web", CreateVolumeRequest{Name: "restored", SnapshotID: snap.ID})
	if err != nil || r.SnapshotID != snap.ID || r.SizeBytes != 96<<20 {
		t.Fatalf("restore: %+v %v", r, err)
	}
	if p, err := c.PruneVolumes(ctx, "web", false); err != nil || len(p.VolumesDeleted) != 0 {
		t.Errorf("prune (anonymous only): %+v %v", p, err)
	}
	if err := c.RemoveSnapshot(ctx, "web", snap.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveVolume(ctx, "web", "data"); err != nil {
		t.Fatal(err)
	}
	if p, err := c.PruneVolumes(ctx, "web", true); err != nil || len(p.VolumesDeleted) != 2 {
		t.Errorf("prune -a: %+v %v", p, err)
	}
	if l, _ := c.ListVolumes(ctx, ""); len(l) != 0 {
		t.Errorf("left: %+v", l)
	}
}

// TestVolumeToWire: every field of a volume reaches the wire (a new field
// of volume.Volume makes this fail until VolumeToWire carries it).
func TestVolumeToWire(t *testing.T) {
	now := time.Now()
	v := volume.Volume{ID: "vol_1", Name: "n", App: "a", SizeBytes: 3 << 30, Encrypted: true, Labels: map[string]string{"a": "b"},
		Anonymous: true, State: "created", Snapshot: "vs_1", CreatedAt: now, Path: "/p", AllocatedBytes: 7,
		Attachments: []volume.Attachment{{Machine: "m", Active: true, Since: now}}}
	assertAllSet(t, "volume.Volume", reflect.ValueOf(v))
	w := VolumeToWire(v)
	assertAllSet(t, "api.Volume", reflect.ValueOf(w))
	if *w.AttachedMachineID != "m" || w.SizeGB != 3 || w.Attachments[0].MachineID != "m" {
		t.Errorf("%+v", w)
	}
	s := volume.Snapshot{ID: "vs_1", Volume: "vol_1", VolumeName: "n", App: "a", SizeBytes: 1, Encrypted: true, Method: "reflink",
		State: "created", CreatedAt: now, Path: "/p", AllocatedBytes: 1}
	assertAllSet(t, "volume.Snapshot", reflect.ValueOf(s))
	assertAllSet(t, "api.VolumeSnapshot", reflect.ValueOf(SnapshotToWire(s)))
}

func assertAllSet(t *testing.T, what string, v reflect.Value) {
	t.Helper()
	for i := 0; i < v.NumField(); i++ {
		if v.Field(i).IsZero() {
			t.Errorf("%s.%s is not set", what, v.Type().Field(i).Name)
		}
	}
}
