package api

import (
	"context"
	"net/url"
)

func volumePath(app, id, sub string) string {
	p := "/v1/apps/" + url.PathEscape(app) + "/volumes"
	if id != "" {
		p += "/" + url.PathEscape(id)
	}
	if sub != "" {
		p += "/" + sub
	}
	return p
}

// CreateVolume creates a volume in app.
func (c *Client) CreateVolume(ctx context.Context, app string, req CreateVolumeRequest) (*Volume, error) {
	var v Volume
	return &v, c.Do(ctx, "POST", volumePath(app, "", ""), req, &v)
}

// ListVolumes lists the volumes of app ("" every app).
func (c *Client) ListVolumes(ctx context.Context, app string) ([]Volume, error) {
	p := "/v1/volumes"
	if app != "" {
		p = volumePath(app, "", "")
	}
	var out []Volume
	return out, c.Do(ctx, "GET", p, nil, &out)
}

// GetVolume returns a volume by id, id prefix or name.
func (c *Client) GetVolume(ctx context.Context, app, id string) (*Volume, error) {
	var v Volume
	return &v, c.Do(ctx, "GET", volumePath(app, id, ""), nil, &v)
}

// RemoveVolume removes a volume (refused while a machine holds it).
func (c *Client) RemoveVolume(ctx context.Context, app, id string) error {
	return c.Do(ctx, "DELETE", volumePath(app, id, ""), nil, nil)
}

// ExtendVolume grows a volume.
func (c *Client) ExtendVolume(ctx context.Context, app, id string, req ExtendVolumeRequest) (*ExtendVolumeResponse, error) {
	var out ExtendVolumeResponse
	return &out, c.Do(ctx, "PUT", volumePath(app, id, "extend"), req, &out)
}

// PruneVolumes removes unattached anonymous volumes of app (all: every
// unattached volume).
func (c *Client) PruneVolumes(ctx context.Context, app string, all bool) (*PruneVolumesResponse, error) {
	p := volumePath(app, "", "prune")
	if all {
		p += "?all=1"
	}
	var out PruneVolumesResponse
	return &out, c.Do(ctx, "POST", p, nil, &out)
}

// CreateSnapshot snapshots a volume.
func (c *Client) CreateSnapshot(ctx context.Context, app, id string) (*VolumeSnapshot, error) {
	var s VolumeSnapshot
	return &s, c.Do(ctx, "POST", volumePath(app, id, "snapshots"), nil, &s)
}

// ListSnapshots lists the snapshots of volume id ("" every snapshot of app).
func (c *Client) ListSnapshots(ctx context.Context, app, id string) ([]VolumeSnapshot, error) {
	p := "/v1/apps/" + url.PathEscape(app) + "/snapshots"
	if id != "" {
		p = volumePath(app, id, "snapshots")
	}
	var out []VolumeSnapshot
	return out, c.Do(ctx, "GET", p, nil, &out)
}

// RemoveSnapshot removes a snapshot.
func (c *Client) RemoveSnapshot(ctx context.Context, app, sid string) error {
	return c.Do(ctx, "DELETE", "/v1/apps/"+url.PathEscape(app)+"/snapshots/"+url.PathEscape(sid), nil, nil)
}
