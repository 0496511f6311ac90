package volume

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Buckets in the shared metadata database (paths.Root.MetaDB):
//
//	volume.v1.volumes     id → volumeRecord (JSON)
//	volume.v1.names       app "\x00" name → id
//	volume.v1.snapshots   id → snapshotRecord (JSON)
var (
	bucketVolumes   = []byte("volume.v1.volumes")
	bucketNames     = []byte("volume.v1.names")
	bucketSnapshots = []byte("volume.v1.snapshots")
)

// recordVersion is the version of the records below; a record of another
// version is refused rather than misread.
const recordVersion = 1

// volumeRecord is a volume as stored. Private: Volume is what leaves the
// package (toVolume; record does the reverse for new volumes).
type volumeRecord struct {
	V           int               `json:"v"`
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	App         string            `json:"app"`
	Size        int64             `json:"size"`
	Encrypted   bool              `json:"encrypted"`
	Wrapped     bool              `json:"wrapped,omitempty"` // the key file is wrapped by the daemon's key
	UUID        string            `json:"uuid,omitempty"`    // the LUKS2 header's
	Labels      map[string]string `json:"labels,omitempty"`
	Anonymous   bool              `json:"anonymous,omitempty"`
	State       string            `json:"state"`
	Snapshot    string            `json:"snapshot,omitempty"`
	Attachments []attachRecord    `json:"attachments,omitempty"`
	Created     time.Time         `json:"created"`
	// ExtendTo is the size an extend in progress grows the file to.
	ExtendTo int64 `json:"extend_to,omitempty"`
}

type attachRecord struct {
	Machine  string `json:"machine"`
	ReadOnly bool   `json:"ro,omitempty"`
	// Active: the machine runs with the volume (Attach); inactive
	// attachments are references of machines that exist (Reference).
	Active bool      `json:"active,omitempty"`
	Since  time.Time `json:"since"`
}

type snapshotRecord struct {
	V          int       `json:"v"`
	ID         string    `json:"id"`
	Volume     string    `json:"volume"`
	VolumeName string    `json:"volume_name"`
	App        string    `json:"app"`
	Size       int64     `json:"size"`
	Encrypted  bool      `json:"encrypted"`
	Wrapped    bool      `json:"wrapped,omitempty"`
	UUID       string    `json:"uuid,omitempty"`
	Method     string    `json:"method"`
	State      string    `json:"state"`
	Created    time.Time `json:"created"`
}

// toVolume converts a record for callers; path and allocated are the
// file's.
func (r *volumeRecord) toVolume(path string, allocated int64) Volume {
	v := Volume{
		ID: r.ID, Name: r.Name, App: r.App, SizeBytes: r.Size, Encrypted: r.Encrypted,
		Labels: maps.Clone(r.Labels), Anonymous: r.Anonymous, State: r.State, Snapshot: r.Snapshot,
		CreatedAt: r.Created, Path: path, AllocatedBytes: allocated,
	}
	for _, a := range r.Attachments {
		v.Attachments = append(v.Attachments, Attachment{Machine: a.Machine, ReadOnly: a.ReadOnly, Active: a.Active, Since: a.Since})
	}
	return v
}

func (r *snapshotRecord) toSnapshot(path string, allocated int64) Snapshot {
	return Snapshot{
		ID: r.ID, Volume: r.Volume, VolumeName: r.VolumeName, App: r.App, SizeBytes: r.Size,
		Encrypted: r.Encrypted, Method: r.Method, State: r.State, CreatedAt: r.Created,
		Path: path, AllocatedBytes: allocated,
	}
}

func (r *volumeRecord) clone() *volumeRecord {
	c := *r
	c.Labels = maps.Clone(r.Labels)
	c.Attachments = slices.Clone(r.Attachments)
	return &c
}

func decodeVolume(b []byte) (*volumeRecord, error) {
	var r volumeRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	if r.V != recordVersion {
		return nil, fmt.Errorf("volume record version %d (this ferry reads %d)", r.V, recordVersion)
	}
	return &r, nil
}

func decodeSnapshot(b []byte) (*snapshotRecord, error) {
	var r snapshotRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	if r.V != recordVersion {
		return nil, fmt.Errorf("snapshot record version %d (this ferry reads %d)", r.V, recordVersion)
	}
	return &r, nil
}

func nameKey(app, name string) []byte { return []byte(app + "\x00" + name) }
