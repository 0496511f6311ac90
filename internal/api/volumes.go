package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/volume"
)

// The Volumes API, shaped like Fly's (per app; extend; snapshots), with
// Docker's prune (docs/api.md has the reference):
//
//	POST   /v1/apps/{app}/volumes                        CreateVolumeRequest → Volume
//	GET    /v1/apps/{app}/volumes                        → []Volume
//	GET    /v1/volumes                                   → []Volume of every app
//	GET    /v1/apps/{app}/volumes/{id}                   → Volume (id, id prefix or name)
//	DELETE /v1/apps/{app}/volumes/{id}
//	PUT    /v1/apps/{app}/volumes/{id}/extend            ExtendVolumeRequest → ExtendVolumeResponse
//	GET    /v1/apps/{app}/volumes/{id}/snapshots         → []VolumeSnapshot
//	POST   /v1/apps/{app}/volumes/{id}/snapshots         → VolumeSnapshot
//	GET    /v1/apps/{app}/snapshots                      → []VolumeSnapshot of the app
//	DELETE /v1/apps/{app}/snapshots/{sid}
//	POST   /v1/apps/{app}/volumes/prune[?all=1]          → PruneVolumesResponse

// VolumeService is what the volume handlers need (a *volume.Store).
type VolumeService interface {
	Create(ctx context.Context, req volume.CreateRequest) (volume.Volume, error)
	List(ctx context.Context, app string) ([]volume.Volume, error)
	Get(ctx context.Context, app, ref string) (volume.Volume, error)
	Remove(ctx context.Context, app, ref string) error
	Extend(ctx context.Context, app, ref string, size int64) (volume.Volume, bool, error)
	Prune(ctx context.Context, app string, all bool) ([]volume.Volume, int64, error)
	CreateSnapshot(ctx context.Context, app, ref string) (volume.Snapshot, error)
	Snapshots(ctx context.Context, app, ref string) ([]volume.Snapshot, error)
	RemoveSnapshot(ctx context.Context, app, id string) error
}

var _ VolumeService = (*volume.Store)(nil)

// Volume is a volume on the wire: Fly's fields (size_gb, encrypted,
// attached_machine_id, fstype, snapshot_id), plus ferry's.
type Volume struct {
	ID                string             `json:"id"`
	Name              string             `json:"name"`
	App               string             `json:"app"`
	State             string             `json:"state"`
	SizeGB            int64              `json:"size_gb"` // whole GiB, rounded down
	SizeBytes         int64              `json:"size_bytes"`
	Encrypted         bool               `json:"encrypted"`
	FSType            string             `json:"fstype"`
	AttachedMachineID *string            `json:"attached_machine_id"` // the read-write holder
	Attachments       []VolumeAttachment `json:"attachments,omitempty"`
	SnapshotID        string             `json:"snapshot_id,omitempty"` // made from this snapshot
	Labels            map[string]string  `json:"labels,omitempty"`
	Anonymous         bool               `json:"anonymous,omitempty"`
	CreatedAt         time.Time          `json:"created_at"`
	Path              string             `json:"path"`
	AllocatedBytes    int64              `json:"allocated_bytes"`
}

// VolumeAttachment is a machine holding a volume.
type VolumeAttachment struct {
	MachineID string    `json:"machine_id"`
	ReadOnly  bool      `json:"read_only,omitempty"`
	Active    bool      `json:"active,omitempty"` // the machine runs with it
	Since     time.Time `json:"since"`
}

// VolumeSnapshot is a snapshot on the wire (Fly's id, created_at, size,
// status; plus the volume it copies).
type VolumeSnapshot struct {
	ID             string    `json:"id"`
	VolumeID       string    `json:"volume_id"`
	VolumeName     string    `json:"volume_name"`
	App            string    `json:"app"`
	Size           int64     `json:"size"`
	Status         string    `json:"status"`
	Encrypted      bool      `json:"encrypted"`
	Method         string    `json:"method"` // reflink or sparse-copy
	CreatedAt      time.Time `json:"created_at"`
	Path           string    `json:"path"`
	AllocatedBytes int64     `json:"allocated_bytes"`
}

// CreateVolumeRequest is POST /v1/apps/{app}/volumes. Give the size as
// size_gb (Fly) or size_bytes (ferry), not both; neither: 1 GiB (or the
// snapshot's size).
type CreateVolumeRequest struct {
	Name       string            `json:"name"`
	SizeGB     int64             `json:"size_gb,omitempty"`
	SizeBytes  int64             `json:"size_bytes,omitempty"`
	Encrypted  *bool             `json:"encrypted,omitempty"` // default true
	SnapshotID string            `json:"snapshot_id,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
}

// ExtendVolumeRequest is PUT …/extend: the new size, as for create.
type ExtendVolumeRequest struct {
	SizeGB    int64 `json:"size_gb,omitempty"`
	SizeBytes int64 `json:"size_bytes,omitempty"`
}

// ExtendVolumeResponse is Fly's: the volume and whether a machine holding
// it must restart to see the new size.
type ExtendVolumeResponse struct {
	Volume       Volume `json:"volume"`
	NeedsRestart bool   `json:"needs_restart"`
}

// PruneVolumesResponse is Docker's shape.
type PruneVolumesResponse struct {
	VolumesDeleted []string `json:"volumes_deleted"`
	SpaceReclaimed int64    `json:"space_reclaimed"`
}

// VolumeToWire converts a volume for the wire.
func VolumeToWire(v volume.Volume) Volume {
	out := Volume{ID: v.ID, Name: v.Name, App: v.App, State: v.State, SizeGB: v.SizeBytes >> 30, SizeBytes: v.SizeBytes,
		Encrypted: v.Encrypted, FSType: "ext4", SnapshotID: v.Snapshot, Labels: v.Labels, Anonymous: v.Anonymous,
		CreatedAt: v.CreatedAt, Path: v.Path, AllocatedBytes: v.AllocatedBytes}
	if w := v.Writer(); w != "" {
		out.AttachedMachineID = &w
	}
	for _, a := range v.Attachments {
		out.Attachments = append(out.Attachments, VolumeAttachment{MachineID: a.Machine, ReadOnly: a.ReadOnly, Active: a.Active, Since: a.Since})
	}
	return out
}

// SnapshotToWire converts a snapshot for the wire.
func SnapshotToWire(s volume.Snapshot) VolumeSnapshot {
	return VolumeSnapshot{ID: s.ID, VolumeID: s.Volume, VolumeName: s.VolumeName, App: s.App, Size: s.SizeBytes,
		Status: s.State, Encrypted: s.Encrypted, Method: s.Method, CreatedAt: s.CreatedAt, Path: s.Path, AllocatedBytes: s.AllocatedBytes}
}

// requestSize turns size_gb/size_bytes into bytes (0: not given).
func requestSize(gb, bytes int64) (int64, error) {
	switch {
	case gb != 0 && bytes != 0:
		return 0, fmt.Errorf("size_gb and size_bytes: give one: %w", errdefs.ErrInvalidArgument)
	case gb < 0 || bytes < 0:
		return 0, fmt.Errorf("negative size: %w", errdefs.ErrInvalidArgument)
	case gb > volume.MaxSize>>30:
		return 0, fmt.Errorf("size_gb %d: a volume is at most 16 TiB: %w", gb, errdefs.ErrInvalidArgument)
	case gb != 0:
		return gb << 30, nil
	}
	return bytes, nil
}

// RegisterVolumes adds the Volumes API routes to s.
func RegisterVolumes(s *Server, svc VolumeService) {
	h := volumeHandlers{svc}
	base := "/v1/apps/{app}/volumes"
	s.Handle("POST "+base, h.create)
	s.Handle("GET "+base, h.list)
	s.Handle("GET /v1/volumes", h.list)
	s.Handle("POST "+base+"/prune", h.prune)
	s.Handle("GET "+base+"/{id}", h.get)
	s.Handle("DELETE "+base+"/{id}", h.remove)
	s.Handle("PUT "+base+"/{id}/extend", h.extend)
	s.Handle("GET "+base+"/{id}/snapshots", h.snapshots)
	s.Handle("POST "+base+"/{id}/snapshots", h.snapshot)
	s.Handle("GET /v1/apps/{app}/snapshots", h.snapshots)
	s.Handle("DELETE /v1/apps/{app}/snapshots/{sid}", h.removeSnapshot)
}

type volumeHandlers struct{ svc VolumeService }

func (h volumeHandlers) create(w http.ResponseWriter, r *http.Request) error {
	var req CreateVolumeRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	size, err := requestSize(req.SizeGB, req.SizeBytes)
	if err != nil {
		return err
	}
	v, err := h.svc.Create(r.Context(), volume.CreateRequest{App: r.PathValue("app"), Name: req.Name, Size: size,
		Encrypted: req.Encrypted, Labels: req.Labels, Snapshot: req.SnapshotID})
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, VolumeToWire(v))
}

func (h volumeHandlers) list(w http.ResponseWriter, r *http.Request) error {
	vs, err := h.svc.List(r.Context(), r.PathValue("app"))
	if err != nil {
		return err
	}
	out := []Volume{}
	for _, v := range vs {
		out = append(out, VolumeToWire(v))
	}
	return WriteJSON(w, http.StatusOK, out)
}

func (h volumeHandlers) get(w http.ResponseWriter, r *http.Request) error {
	v, err := h.svc.Get(r.Context(), r.PathValue("app"), r.PathValue("id"))
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, VolumeToWire(v))
}

func (h volumeHandlers) remove(w http.ResponseWriter, r *http.Request) error {
	if err := h.svc.Remove(r.Context(), r.PathValue("app"), r.PathValue("id")); err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func (h volumeHandlers) extend(w http.ResponseWriter, r *http.Request) error {
	var req ExtendVolumeRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	size, err := requestSize(req.SizeGB, req.SizeBytes)
	if err != nil {
		return err
	}
	if size == 0 {
		return fmt.Errorf("extend: size_gb or size_bytes: required: %w", errdefs.ErrInvalidArgument)
	}
	v, restart, err := h.svc.Extend(r.Context(), r.PathValue("app"), r.PathValue("id"), size)
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, ExtendVolumeResponse{Volume: VolumeToWire(v), NeedsRestart: restart})
}

func (h volumeHandlers) prune(w http.ResponseWriter, r *http.Request) error {
	all := r.URL.Query().Get("all")
	removed, reclaimed, err := h.svc.Prune(r.Context(), r.PathValue("app"), all == "1" || all == "true")
	if err != nil {
		return err
	}
	out := PruneVolumesResponse{VolumesDeleted: []string{}, SpaceReclaimed: reclaimed}
	for _, v := range removed {
		out.VolumesDeleted = append(out.VolumesDeleted, v.Name)
	}
	return WriteJSON(w, http.StatusOK, out)
}

func (h volumeHandlers) snapshots(w http.ResponseWriter, r *http.Request) error {
	ss, err := h.svc.Snapshots(r.Context(), r.PathValue("app"), r.PathValue("id"))
	if err != nil {
		return err
	}
	out := []VolumeSnapshot{}
	for _, s := range ss {
		out = append(out, SnapshotToWire(s))
	}
	return WriteJSON(w, http.StatusOK, out)
}

func (h volumeHandlers) snapshot(w http.ResponseWriter, r *http.Request) error {
	s, err := h.svc.CreateSnapshot(r.Context(), r.PathValue("app"), r.PathValue("id"))
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, SnapshotToWire(s))
}

func (h volumeHandlers) removeSnapshot(w http.ResponseWriter, r *http.Request) error {
	if err := h.svc.RemoveSnapshot(r.Context(), r.PathValue("app"), r.PathValue("sid")); err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, map[string]bool{"ok": true})
}
