package dockerapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/moby/moby/api/types/container"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// docker cp: HEAD/GET/PUT /containers/{id}/archive?path=, through the
// machine manager's copy: ferry-init's archive helper in the running
// guest, or the same code on the host in a view of a stopped container's
// disks.
func (s *Server) archiveContainer(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	m, err := s.container(ref)
	if err != nil {
		return err
	}
	p := r.URL.Query().Get("path")
	if p == "" {
		return invalid("path is required")
	}
	ctx := r.Context()
	if r.Method == http.MethodPut {
		if err := s.cfg.Machines.CopyTo(ctx, "", m.ID, p, r.Body); err != nil {
			return copyErr(p, ref, err)
		}
		w.WriteHeader(http.StatusOK)
		return nil
	}
	st, err := s.cfg.Machines.StatPath(ctx, "", m.ID, p)
	if err != nil {
		return copyErr(p, ref, err)
	}
	b, _ := json.Marshal(container.PathStat{Name: st.Name, Size: st.Size, Mode: st.Mode, Mtime: st.Mtime, LinkTarget: st.LinkTarget})
	w.Header().Set("X-Docker-Container-Path-Stat", base64.StdEncoding.EncodeToString(b))
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return nil
	}
	w.Header().Set("Content-Type", "application/x-tar")
	return s.cfg.Machines.CopyFrom(ctx, "", m.ID, p, w)
}

func copyErr(p, ref string, err error) error {
	if errors.Is(err, errdefs.ErrNotFound) {
		return notFound("Could not find the file %s in container %s", p, ref)
	}
	return err
}
