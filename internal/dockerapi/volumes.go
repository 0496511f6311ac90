package dockerapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	dvolume "github.com/moby/moby/api/types/volume"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/volume"
)

// Volumes is ferry's volume store (a *volume.Store).
type Volumes interface {
	Create(ctx context.Context, req volume.CreateRequest) (volume.Volume, error)
	Get(ctx context.Context, app, ref string) (volume.Volume, error)
	List(ctx context.Context, app string) ([]volume.Volume, error)
	Remove(ctx context.Context, app, ref string) error
	Prune(ctx context.Context, app string, all bool) ([]volume.Volume, int64, error)
}

var _ Volumes = (*volume.Store)(nil)

func dockerVolume(v volume.Volume) dvolume.Volume {
	out := dvolume.Volume{Name: v.Name, Driver: "local", Mountpoint: v.Path, CreatedAt: v.CreatedAt.Format(time.RFC3339),
		Labels: v.Labels, Scope: "local", Options: map[string]string{"size": strconv.FormatInt(v.SizeBytes, 10)},
		UsageData: &dvolume.UsageData{RefCount: int64(len(v.Attachments)), Size: v.AllocatedBytes}}
	if v.Encrypted {
		out.Options["encrypted"] = "true"
	}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	return out
}

func (s *Server) volumes() (Volumes, error) {
	if s.cfg.Volumes == nil {
		return nil, errNotImplemented{"volumes: this daemon runs without ferry's volume store"}
	}
	return s.cfg.Volumes, nil
}

// POST /volumes/create. DriverOpts: size (bytes, or 512m, 10g) and
// encrypted (true/false); the driver is ferry's block volumes.
func (s *Server) createVolume(w http.ResponseWriter, r *http.Request) error {
	vs, err := s.volumes()
	if err != nil {
		return err
	}
	var req dvolume.CreateRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Driver != "" && req.Driver != "local" {
		return invalid("volume driver %q: ferry's volumes are its own block volumes (driver local)", req.Driver)
	}
	cr := volume.CreateRequest{App: app, Name: req.Name, Labels: req.Labels, Anonymous: req.Name == ""}
	for k, v := range req.DriverOpts {
		switch k {
		case "size":
			n, err := parseBytes(strings.TrimSuffix(strings.ToLower(v), "b"))
			if err != nil {
				return invalid("volume option size=%s: %v", v, err)
			}
			cr.Size = n
		case "encrypted":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return invalid("volume option encrypted=%s: want true or false", v)
			}
			cr.Encrypted = &b
		default:
			return invalid("volume option %q: ferry's volumes take size and encrypted", k)
		}
	}
	if req.Name != "" {
		// Docker answers an existing name with that volume.
		if v, err := vs.Get(r.Context(), app, req.Name); err == nil {
			return writeJSON(w, http.StatusCreated, dockerVolume(v))
		}
	}
	v, err := vs.Create(r.Context(), cr)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, dockerVolume(v))
}

// GET /volumes?filters=
func (s *Server) listVolumes(w http.ResponseWriter, r *http.Request) error {
	vs, err := s.volumes()
	if err != nil {
		return err
	}
	f, err := parseFilters(r, "name", "label", "driver", "dangling")
	if err != nil {
		return err
	}
	list, err := vs.List(r.Context(), app)
	if err != nil {
		return err
	}
	out := dvolume.ListResponse{Volumes: []dvolume.Volume{}, Warnings: []string{}}
	for _, v := range list {
		if !f.labels(v.Labels) || !f.match("name", func(n string) bool { return strings.Contains(v.Name, n) }) ||
			!f.match("driver", func(n string) bool { return n == "local" }) ||
			!f.match("dangling", func(n string) bool { return (n == "true" || n == "1") == (len(v.Attachments) == 0) }) {
			continue
		}
		d := dockerVolume(v)
		out.Volumes = append(out.Volumes, d)
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) volume(r *http.Request, name string) (volume.Volume, error) {
	vs, err := s.volumes()
	if err != nil {
		return volume.Volume{}, err
	}
	v, err := vs.Get(r.Context(), app, name)
	if errors.Is(err, errdefs.ErrNotFound) {
		return v, notFound("get %s: no such volume", name)
	}
	return v, err
}

// GET /volumes/{name}
func (s *Server) inspectVolume(w http.ResponseWriter, r *http.Request) error {
	v, err := s.volume(r, r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, dockerVolume(v))
}

// DELETE /volumes/{name}?force=
func (s *Server) removeVolume(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if _, err := s.volume(r, name); err != nil {
		return err
	}
	if err := s.cfg.Volumes.Remove(r.Context(), app, name); err != nil {
		if errors.Is(err, errdefs.ErrConflict) {
			return conflict("remove %s: volume is in use - %v", name, err)
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// POST /volumes/prune?filters={"all":["true"]}: anonymous volumes no
// machine uses (all: named ones too), as Docker prunes.
func (s *Server) pruneVolumes(w http.ResponseWriter, r *http.Request) error {
	vs, err := s.volumes()
	if err != nil {
		return err
	}
	f, err := parseFilters(r, "all", "label")
	if err != nil {
		return err
	}
	all := false
	for _, v := range f["all"] {
		all = all || v == "true" || v == "1"
	}
	gone, freed, err := vs.Prune(r.Context(), app, all)
	if err != nil {
		return err
	}
	rep := dvolume.PruneReport{VolumesDeleted: []string{}, SpaceReclaimed: uint64(max(freed, 0))}
	for _, v := range gone {
		rep.VolumesDeleted = append(rep.VolumesDeleted, v.Name)
	}
	return writeJSON(w, http.StatusOK, rep)
}
