package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/ferryvm/ferry/internal/image"
	"github.com/ferryvm/ferry/internal/rootfs"
)

// The rootfs API (the daemon side of `ferry image rootfs`, the rootfs part
// of `ferry image inspect`, and `ferry system df`):
//
//	POST /v1/rootfs/bases         RootfsRequest → RootfsBase (builds the base unless it exists)
//	GET  /v1/rootfs/bases/{ref...} → RootfsBase (Built false when not built yet)
//	GET  /v1/rootfs/content/{ref...} → the base's ext4 bytes (404 until built)
//	GET  /v1/system/df            → SystemDF

// RootfsService is what the rootfs handlers need from the daemon.
type RootfsService interface {
	// EnsureRootfs builds (or finds) the base of the cached image ref.
	EnsureRootfs(ctx context.Context, ref string) (RootfsBase, error)
	// InspectRootfs reports whether ref's base exists; ErrNotFound only
	// when the image itself is unknown.
	InspectRootfs(ctx context.Context, ref string) (RootfsBase, error)
	// OpenRootfs opens a built base for reading.
	OpenRootfs(ctx context.Context, ref string) (io.ReadCloser, RootfsBase, error)
	// DiskUsage reports images, bases and machine disks.
	DiskUsage(ctx context.Context) (SystemDF, error)
}

// RootfsRequest names a cached image.
type RootfsRequest struct {
	Ref string `json:"ref"`
}

// RootfsBase is an image's read-only ext4 base.
type RootfsBase struct {
	Image     string    `json:"image"` // manifest digest
	Built     bool      `json:"built"`
	Path      string    `json:"path,omitempty"` // on the daemon's host
	Size      int64     `json:"size,omitempty"`
	Allocated int64     `json:"allocated,omitempty"`
	Created   time.Time `json:"created,omitzero"`
	// BuildSeconds is how long this request's build took (0: it existed).
	BuildSeconds float64 `json:"build_seconds,omitempty"`
}

// SystemDF is ferry's disk use: the image cache, the rootfs bases and the
// machines' writable disks, with allocated (real) sizes.
type SystemDF struct {
	Images         []image.Summary       `json:"images"`
	ContentBytes   int64                 `json:"content_bytes"` // allocated by the image cache's blobs
	Bases          []rootfs.BaseUsage    `json:"bases"`
	Machines       []rootfs.MachineUsage `json:"machines"`
	TemplatesBytes int64                 `json:"templates_bytes"` // scratch templates (allocated)
}

// RegisterRootfs adds the rootfs routes to s.
func RegisterRootfs(s *Server, svc RootfsService) {
	s.Handle("POST /v1/rootfs/bases", func(w http.ResponseWriter, r *http.Request) error {
		var req RootfsRequest
		if err := DecodeJSON(r, &req); err != nil {
			return err
		}
		b, err := svc.EnsureRootfs(r.Context(), req.Ref)
		if err != nil {
			return err
		}
		return WriteJSON(w, http.StatusOK, b)
	})
	s.Handle("GET /v1/rootfs/bases/{ref...}", func(w http.ResponseWriter, r *http.Request) error {
		b, err := svc.InspectRootfs(r.Context(), r.PathValue("ref"))
		if err != nil {
			return err
		}
		return WriteJSON(w, http.StatusOK, b)
	})
	s.Handle("GET /v1/rootfs/content/{ref...}", func(w http.ResponseWriter, r *http.Request) error {
		rc, b, err := svc.OpenRootfs(r.Context(), r.PathValue("ref"))
		if err != nil {
			return err
		}
		defer func() { _ = rc.Close() }()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(b.Size, 10))
		w.WriteHeader(http.StatusOK)
		_, err = io.Copy(w, rc)
		return err
	})
	s.Handle("GET /v1/system/df", func(w http.ResponseWriter, r *http.Request) error {
		df, err := svc.DiskUsage(r.Context())
		if err != nil {
			return err
		}
		return WriteJSON(w, http.StatusOK, df)
	})
}

// EnsureRootfs builds (or finds) the base of the cached image ref.
func (c *Client) EnsureRootfs(ctx context.Context, ref string) (RootfsBase, error) {
	var out RootfsBase
	return out, c.Do(ctx, "POST", "/v1/rootfs/bases", RootfsRequest{Ref: ref}, &out)
}

// InspectRootfs reports whether the base of ref exists, and its size.
func (c *Client) InspectRootfs(ctx context.Context, ref string) (RootfsBase, error) {
	var out RootfsBase
	return out, c.Do(ctx, "GET", "/v1/rootfs/bases/"+escapeRef(ref), nil, &out)
}

// DownloadRootfs copies the built base of ref to w and returns its size.
func (c *Client) DownloadRootfs(ctx context.Context, ref string, w io.Writer) (int64, error) {
	resp, err := c.send(ctx, "GET", "/v1/rootfs/content/"+escapeRef(ref), nil, nil)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	n, err := io.Copy(w, resp.Body)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("short read: %d of %d bytes", n, resp.ContentLength)
	}
	if err != nil {
		return n, fmt.Errorf("download rootfs of %s: %w", ref, err)
	}
	return n, nil
}

// SystemDF reports ferry's disk use.
func (c *Client) SystemDF(ctx context.Context) (SystemDF, error) {
	var out SystemDF
	return out, c.Do(ctx, "GET", "/v1/system/df", nil, &out)
}
