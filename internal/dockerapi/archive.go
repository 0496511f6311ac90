package dockerapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/moby/moby/api/types/container"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
)

// docker cp: HEAD/GET/PUT /containers/{id}/archive?path=, through the
// machine manager's copy (ferry-init's archive helper in the running
// guest). A stopped container's files live on its scratch disk inside the
// guest's overlay, so copying needs it running.
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
	if m.State != types.StateStarted {
		return conflict("docker cp: container %s is %s; ferry copies through the running guest: start it first", ref, dockerState(m))
	}
	ctx := r.Context()
	if err := s.cfg.Machines.WaitBooted(ctx, "", m.ID); err != nil {
		return containerErr(ref, err)
	}
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
