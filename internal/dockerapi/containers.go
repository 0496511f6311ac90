package dockerapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/machine"
)

// POST /containers/create?name=
func (s *Server) createContainer(w http.ResponseWriter, r *http.Request) error {
	var req container.CreateRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	name := r.URL.Query().Get("name")
	mreq, err := machineRequest(name, req)
	if err != nil {
		return err
	}
	// Docker's flow: a missing image is a 404, which makes the CLI pull
	// (with progress) and create again.
	if _, err := s.cfg.Images.Inspect(r.Context(), req.Image); errors.Is(err, errdefs.ErrNotFound) {
		return notFound("No such image: %s", req.Image)
	} else if err != nil {
		return err
	}
	m, err := s.cfg.Machines.Create(r.Context(), app, mreq)
	if errors.Is(err, errdefs.ErrAlreadyExists) && mreq.Name != "" {
		other, _ := s.cfg.Machines.Get("", mreq.Name)
		id := ""
		if other != nil {
			id = containerID(other.ID)
		}
		return &apiError{kind: errdefs.ErrConflict, msg: fmt.Sprintf(`Conflict. The container name "/%s" is already in use by container "%s". You have to remove (or rename) that container to be able to reuse that name.`, mreq.Name, id)}
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, container.CreateResponse{ID: containerID(m.ID), Warnings: []string{}})
}

// GET /containers/{id}/json
func (s *Server) inspectContainer(w http.ResponseWriter, r *http.Request) error {
	m, err := s.container(r.PathValue("id"))
	if err != nil {
		return err
	}
	resp := inspect(m)
	resp.ExecIDs = s.execs.of(m.ID)
	return writeJSON(w, http.StatusOK, resp)
}

// GET /containers/json?all=&limit=&filters=
func (s *Server) listContainers(w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r, "label", "name", "id", "status", "ancestor", "exited", "network", "before", "since", "health", "publish", "expose", "volume", "is-task")
	if err != nil {
		return err
	}
	for _, v := range f["health"] {
		if err := container.ValidateHealthStatus(container.HealthStatus(v)); err != nil {
			return invalid("%v", err)
		}
	}
	all := boolParam(r, "all")
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit > 0 {
		all = true
	}
	ms := s.cfg.Machines.List("", true)
	out := make([]container.Summary, 0, len(ms))
	// Newest first, as Docker lists.
	for i := len(ms) - 1; i >= 0; i-- {
		m := ms[i]
		st := dockerState(m)
		if !all && st != container.StateRunning && len(f["status"]) == 0 {
			continue
		}
		if !keep(f, m, st) {
			continue
		}
		out = append(out, summary(m))
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

// keep applies container filters.
func keep(f filters, m *types.Machine, st container.ContainerState) bool {
	id := containerID(m.ID)
	return f.labels(m.Config.Metadata) &&
		f.match("name", func(v string) bool { return strings.Contains(m.Name, strings.TrimPrefix(v, "/")) }) &&
		f.match("id", func(v string) bool { return strings.HasPrefix(id, v) }) &&
		f.match("status", func(v string) bool { return v == string(st) }) &&
		f.match("exited", func(v string) bool {
			return st == container.StateExited && strconv.Itoa(exitCode(m.LastExit)) == v
		}) &&
		f.match("ancestor", func(v string) bool {
			return m.Config.Image == v || m.ImageRef.Ref == v || strings.HasPrefix(m.ImageRef.Digest, v) ||
				strings.TrimPrefix(m.ImageRef.Digest, "sha256:") == v || m.Config.Image == v+":latest"
		}) &&
		f.match("network", func(v string) bool { _, ok := endpoints(m)[v]; return ok }) &&
		f.match("health", func(v string) bool { return v == string(healthStatus(m)) })
}

// POST /containers/{id}/start
func (s *Server) startContainer(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	m, err := s.container(ref)
	if err != nil {
		return err
	}
	if dockerState(m) == container.StateRunning {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	if _, err := s.cfg.Machines.Start(r.Context(), "", m.ID); err != nil {
		return containerErr(ref, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// stopOptions reads ?t= (seconds) and ?signal=.
func stopOptions(r *http.Request) (machine.StopOptions, error) {
	var opt machine.StopOptions
	q := r.URL.Query()
	if t := q.Get("t"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil {
			return opt, invalid("invalid value for t: %q", t)
		}
		opt.Timeout = time.Duration(n) * time.Second
		if n <= 0 {
			opt.Timeout = time.Millisecond // 0: kill at once; -1 (wait forever) is bounded by the manager
		}
	}
	if sig := q.Get("signal"); sig != "" {
		n, err := parseSignal(sig)
		if err != nil {
			return opt, err
		}
		opt.Signal = n
	}
	return opt, nil
}

// POST /containers/{id}/stop
func (s *Server) stopContainer(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	m, err := s.container(ref)
	if err != nil {
		return err
	}
	opt, err := stopOptions(r)
	if err != nil {
		return err
	}
	if dockerState(m) != container.StateRunning {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	if _, err := s.cfg.Machines.Stop(r.Context(), "", m.ID, opt); err != nil {
		return containerErr(ref, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// POST /containers/{id}/restart
func (s *Server) restartContainer(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	m, err := s.container(ref)
	if err != nil {
		return err
	}
	opt, err := stopOptions(r)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Machines.Restart(r.Context(), "", m.ID, opt); err != nil {
		return containerErr(ref, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// POST /containers/{id}/kill?signal=
func (s *Server) killContainer(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	m, err := s.container(ref)
	if err != nil {
		return err
	}
	sig := syscall.SIGKILL
	if v := r.URL.Query().Get("signal"); v != "" {
		if sig, err = parseSignal(v); err != nil {
			return err
		}
	}
	if dockerState(m) != container.StateRunning {
		return conflict("Cannot kill container: %s: container %s is not running", ref, containerID(m.ID))
	}
	if err := s.cfg.Machines.Signal(r.Context(), "", m.ID, sig); err != nil {
		return containerErr(ref, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// DELETE /containers/{id}?force=&v=
func (s *Server) removeContainer(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	m, err := s.container(ref)
	if err != nil {
		return err
	}
	force := boolParam(r, "force")
	if !force && dockerState(m) == container.StateRunning {
		return conflict("cannot remove container %q: container is running: stop the container before removing or force remove", "/"+m.Name)
	}
	if err := s.cfg.Machines.DestroyWithVolumes(r.Context(), "", m.ID, force, boolParam(r, "v")); err != nil {
		return containerErr(ref, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// POST /containers/{id}/rename?name=
func (s *Server) renameContainer(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	m, err := s.container(ref)
	if err != nil {
		return err
	}
	name := strings.TrimPrefix(r.URL.Query().Get("name"), "/")
	if name == m.Name {
		return invalid("Renaming a container with the same name as its current name")
	}
	if _, err := s.cfg.Machines.Rename(r.Context(), "", m.ID, name); err != nil {
		if errors.Is(err, errdefs.ErrAlreadyExists) {
			return conflict("Conflict. The container name %q is already in use", "/"+name)
		}
		return containerErr(ref, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// POST /containers/prune?filters=
func (s *Server) pruneContainers(w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r, "label", "until")
	if err != nil {
		return err
	}
	var until time.Time
	if v := f["until"]; len(v) > 0 {
		if until, err = parseTime(v[0]); err != nil {
			return err
		}
	}
	rep := container.PruneReport{ContainersDeleted: []string{}}
	for _, m := range s.cfg.Machines.List("", true) {
		st := dockerState(m)
		if st != container.StateExited && st != container.StateCreated || !f.labels(m.Config.Metadata) {
			continue
		}
		if !until.IsZero() && !m.CreatedAt.Before(until) {
			continue
		}
		if err := s.cfg.Machines.Destroy(r.Context(), "", m.ID, false); err != nil {
			s.log.Warn("prune container", "machine", m.ID, "err", err)
			continue
		}
		rep.ContainersDeleted = append(rep.ContainersDeleted, containerID(m.ID))
	}
	return writeJSON(w, http.StatusOK, rep)
}

// GET /containers/{id}/stats?stream=&one-shot=
func (s *Server) statsContainer(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	m, err := s.container(ref)
	if err != nil {
		return err
	}
	stream := r.URL.Query().Get("stream") == "" || boolParam(r, "stream")
	// sample reads the VMM's CPU time and memory (a stopped machine has
	// none: zeros, as Docker shows).
	sample := func() (container.StatsResponse, error) {
		now := time.Now()
		st := container.StatsResponse{ID: containerID(m.ID), Name: "/" + m.Name, OSType: "linux", Read: now}
		ms, err := s.cfg.Machines.Stats("", m.ID, 0)
		if errors.Is(err, errdefs.ErrConflict) {
			return st, nil
		}
		if err != nil {
			return st, containerErr(ref, err)
		}
		// SystemUsage advances by the guest's CPUs per second, so the CLI's
		// percentage is of one core, as Docker's.
		cpus := uint32(max(m.Config.Guest.CPUs, 1))
		st.CPUStats = container.CPUStats{CPUUsage: container.CPUUsage{TotalUsage: uint64(ms.CPUSeconds * 1e9)},
			SystemUsage: uint64(now.UnixNano()) * uint64(cpus), OnlineCPUs: cpus}
		st.MemoryStats = container.MemoryStats{Usage: uint64(ms.MemoryRSS), Limit: uint64(ms.MemoryMB) << 20}
		st.NumProcs = 1
		return st, nil
	}
	prev, err := sample()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	if !stream && boolParam(r, "one-shot") {
		return writeJSONLine(w, prev)
	}
	for {
		select { // Docker's interval; a single answer, too, carries the previous sample
		case <-r.Context().Done():
			return nil
		case <-time.After(time.Second):
		}
		st, err := sample()
		if err != nil {
			return err
		}
		st.PreCPUStats, st.PreRead = prev.CPUStats, prev.Read
		if err := writeJSONLine(w, st); err != nil || !stream {
			return nil
		}
		prev = st
	}
}

// GET /containers/{id}/top?ps_args=: the guest's processes (ferry-init's
// process lister), in the columns of ps -ef.
func (s *Server) topContainer(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	m, err := s.container(ref)
	if err != nil {
		return err
	}
	if a := r.URL.Query().Get("ps_args"); a != "" && a != "-ef" && a != "-e" && a != "aux" {
		return invalid("docker top %s: ps arguments are not passed to the guest; ferry lists every process in ps -ef's columns", a)
	}
	if m.State != types.StateStarted {
		return conflict("container %s is not running", containerID(m.ID))
	}
	if err := s.cfg.Machines.WaitBooted(r.Context(), "", m.ID); err != nil {
		return containerErr(ref, err)
	}
	ps, err := s.cfg.Machines.Processes(r.Context(), "", m.ID)
	if err != nil {
		return containerErr(ref, err)
	}
	resp := container.TopResponse{Titles: []string{"UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"}, Processes: [][]string{}}
	for _, p := range ps {
		started := m.StartedAt.Add(time.Duration(p.StartTicks) * time.Second / 100)
		cpu := time.Duration(p.CPUTicks) * time.Second / 100
		resp.Processes = append(resp.Processes, []string{strconv.Itoa(p.UID), strconv.Itoa(p.PID), strconv.Itoa(p.PPID), "0",
			started.Local().Format("15:04"), "?", fmt.Sprintf("%02d:%02d:%02d", int(cpu.Hours()), int(cpu.Minutes())%60, int(cpu.Seconds())%60), p.Cmd})
	}
	return writeJSON(w, http.StatusOK, resp)
}

// POST /containers/{id}/resize?h=&w=: to the attached terminal, if any.
func (s *Server) resizeContainer(w http.ResponseWriter, r *http.Request) error {
	m, err := s.container(r.PathValue("id"))
	if err != nil {
		return err
	}
	rows, _ := strconv.Atoi(r.URL.Query().Get("h"))
	cols, _ := strconv.Atoi(r.URL.Query().Get("w"))
	s.execs.resizeAttach(m.ID, rows, cols)
	w.WriteHeader(http.StatusOK)
	return nil
}

func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	if n := unix.SignalNum("SIG" + strings.TrimPrefix(strings.ToUpper(s), "SIG")); n != 0 {
		return n, nil
	}
	return 0, invalid("Invalid signal: %s", s)
}

func parseTime(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, invalid("invalid time %q: want RFC 3339, Unix seconds or a duration", v)
}
