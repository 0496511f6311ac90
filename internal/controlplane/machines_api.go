package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
)

// The Machines API on the control plane: the routes of a host's Machines
// API (internal/api), so `ferry -H tcp://CONTROLPLANE` works as against
// one host:
//
//	POST /v1/apps/{app}/machines     place (volume's home, else most memory
//	                                 free), then create it on that host → types.Machine
//	GET  /v1/apps/{app}/machines, GET /v1/machines
//	                                 every host's machines the control plane placed,
//	                                 each with its Host (state "unknown" when the
//	                                 host does not answer, "pending" before it creates it)
//	GET  /v1/apps/{app}/machines/{id}  the owning host's reply, with Host
//	*    /v1/apps/{app}/machines/{id}[/…]  proxied to the owning host (exec streams,
//	                                 followed logs and waits included); a
//	                                 successful stop or start records the desired
//	                                 state, a destroy removes the machine's record
//	                                 (also when its host is away: the host destroys
//	                                 its copy when it converges)
//
// The control plane proxies rather than redirecting, so a client needs only
// the control plane's address and token; hosts are reached with the API
// token each sent when it registered.
func (s *Server) registerMachines(mux *http.ServeMux) {
	base := "/v1/apps/{app}/machines"
	mux.HandleFunc("POST "+base, s.createMachine)
	mux.HandleFunc("GET "+base, s.listMachines)
	mux.HandleFunc("GET /v1/machines", s.listMachines)
	mux.HandleFunc("GET "+base+"/{id}", s.getMachine)
	mux.HandleFunc(base+"/{id}", s.proxyMachine)
	mux.HandleFunc(base+"/{id}/{rest...}", s.proxyMachine)
	mux.HandleFunc("/v1/images/", func(w http.ResponseWriter, _ *http.Request) {
		api.WriteError(w, fmt.Errorf("the control plane keeps no images: the host a machine is placed on pulls its image when it creates it (pull on a host with `ferry -H tcp://HOST pull`): %w", errdefs.ErrInvalidArgument))
	})
}

// createMachine places a machine and creates it on its host. A host that
// refuses the machine (a bad image, a bad config) leaves nothing placed.
func (s *Server) createMachine(w http.ResponseWriter, r *http.Request) {
	var req types.CreateRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		api.WriteError(w, fmt.Errorf("create machine: body is not a machine: %v: %w", err, errdefs.ErrInvalidArgument))
		return
	}
	app := r.PathValue("app")
	spec := MachineSpec{App: app, Name: req.Name, CPUs: req.Config.Guest.CPUs, MemoryMB: int64(req.Config.Guest.MemoryMB),
		Restart: req.Config.Restart.Policy, Config: &req.Config}
	if spec.CPUs == 0 {
		spec.CPUs = 1
	}
	if spec.MemoryMB == 0 {
		spec.MemoryMB = 256
	}
	if spec.Restart == "" {
		spec.Restart = types.RestartNo
	}
	for _, mt := range req.Config.Mounts {
		if mt.Type == types.MountVolume && mt.Volume != "" {
			spec.Volume = mt.Volume
			break
		}
	}
	if spec.Name == "" {
		spec.Name = "m-" + machineID()
	}
	p, err := s.store.PlaceMachine(r.Context(), spec)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	s.log.Info("machine placed", "app", app, "machine", spec.Name, "id", p.ID, "host", p.HostID, "generation", p.Generation)
	m, err := s.store.machineByID(r.Context(), p.ID)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	mc, err := s.boot(r.Context(), m)
	if err != nil {
		if rerr := s.store.RemoveMachine(context.WithoutCancel(r.Context()), p.ID); rerr != nil {
			s.log.Warn("remove the placement of a machine its host refused", "machine", p.ID, "err", rerr)
		}
		api.WriteError(w, err)
		return
	}
	_ = api.WriteJSON(w, http.StatusOK, mc)
}

// boot creates placed machine m on its host (the host's agent would on
// its next convergence; this is the fast path). A host that already has
// it answers with it.
func (s *Server) boot(ctx context.Context, m Machine) (*types.Machine, error) {
	h, err := s.store.hostAPI(ctx, m.HostID)
	if err != nil {
		return nil, err
	}
	c, err := s.hostClient(h)
	if err != nil {
		return nil, err
	}
	mc, err := c.CreateMachine(ctx, m.App, m.CreateRequest())
	if errors.Is(err, errdefs.ErrAlreadyExists) {
		mc, err = c.GetMachine(ctx, m.App, m.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("create machine %s on host %s: %w", m.Name, h.Name, err)
	}
	mc.Host = h.Name
	return mc, nil
}

// hostClient is an API client of host h (kept per address and token).
func (s *Server) hostClient(h hostAPI) (*api.Client, error) {
	key := h.Addr + " " + h.Token
	if c, ok := s.clients.Load(key); ok {
		return c.(*api.Client), nil
	}
	c, err := api.NewClient(h.Addr, h.Token)
	if err != nil {
		return nil, fmt.Errorf("host %s's address %s: %w", h.Name, h.Addr, err)
	}
	s.clients.Store(key, c)
	return c, nil
}

// listMachines asks every host that runs machines of the app (or of every
// app) for them, at once, and answers them with their Host; a machine its
// host does not report is listed from its record.
func (s *Server) listMachines(w http.ResponseWriter, r *http.Request) {
	app := r.PathValue("app")
	all := r.URL.Query().Get("all") != "0" && r.URL.Query().Get("all") != "false"
	ms, err := s.store.AppMachines(r.Context(), app)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	byHost := map[string][]Machine{}
	for _, m := range ms {
		byHost[m.HostID] = append(byHost[m.HostID], m)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	out := []*types.Machine{}
	for hid, want := range byHost {
		wg.Go(func() {
			got := s.hostMachineList(ctx, hid, app, want)
			mu.Lock()
			defer mu.Unlock()
			for _, mc := range got {
				if all || mc.State == types.StateStarted || mc.State == types.StateStarting {
					out = append(out, mc)
				}
			}
		})
	}
	wg.Wait()
	sortMachines(out)
	_ = api.WriteJSON(w, http.StatusOK, out)
}

// hostMachineList is host hid's copies of want, as it reports them.
func (s *Server) hostMachineList(ctx context.Context, hid, app string, want []Machine) []*types.Machine {
	h, err := s.store.hostAPI(ctx, hid)
	var got []*types.Machine
	if err == nil {
		var c *api.Client
		if c, err = s.hostClient(h); err == nil {
			got, err = c.ListMachines(ctx, app, true)
		}
	}
	name := h.Name
	if name == "" {
		name = hid
	}
	have := map[string]*types.Machine{}
	for _, mc := range got {
		have[mc.ID] = mc
	}
	var out []*types.Machine
	for _, m := range want {
		mc, ok := have[m.ID]
		switch {
		case ok:
		case err != nil:
			mc = &types.Machine{ID: m.ID, Name: m.Name, App: m.App, State: "unknown", Error: "host " + name + " does not answer: " + err.Error()}
		default:
			mc = &types.Machine{ID: m.ID, Name: m.Name, App: m.App, State: "pending"}
		}
		if m.Config != nil && mc.Config.Image == "" {
			mc.Config = *m.Config
		}
		mc.Host = name
		out = append(out, mc)
	}
	return out
}

func sortMachines(ms []*types.Machine) {
	for i := 1; i < len(ms); i++ {
		for j := i; j > 0 && (ms[j].App < ms[j-1].App || ms[j].App == ms[j-1].App && ms[j].Name < ms[j-1].Name); j-- {
			ms[j], ms[j-1] = ms[j-1], ms[j]
		}
	}
}

// getMachine answers the owning host's view of the machine, with Host.
func (s *Server) getMachine(w http.ResponseWriter, r *http.Request) {
	m, h, err := s.owner(r)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	c, err := s.hostClient(h)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	mc, err := c.GetMachine(r.Context(), m.App, m.ID)
	if err != nil {
		api.WriteError(w, fmt.Errorf("machine %s on host %s: %w", m.Name, h.Name, err))
		return
	}
	mc.Host = h.Name
	_ = api.WriteJSON(w, http.StatusOK, mc)
}

// owner is the machine a request names and the host it is placed on.
func (s *Server) owner(r *http.Request) (Machine, hostAPI, error) {
	m, err := s.store.Machine(r.Context(), r.PathValue("app"), r.PathValue("id"))
	if err != nil {
		return m, hostAPI{}, err
	}
	h, err := s.store.hostAPI(r.Context(), m.HostID)
	return m, h, err
}

// proxyMachine forwards a machine verb to the machine's host, naming the
// machine by its ID there.
func (s *Server) proxyMachine(w http.ResponseWriter, r *http.Request) {
	m, h, err := s.owner(r)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	target, err := url.Parse(h.Addr)
	if err != nil {
		api.WriteError(w, fmt.Errorf("host %s's address %s: %v: %w", h.Name, h.Addr, err, errdefs.ErrUnavailable))
		return
	}
	rest := r.PathValue("rest")
	path := "/v1/apps/" + url.PathEscape(m.App) + "/machines/" + m.ID
	if rest != "" {
		path += "/" + rest
	}
	verb := r.Method + " " + rest
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Path, pr.Out.URL.RawPath = path, ""
			pr.SetURL(target)
			pr.Out.Header.Set("Authorization", "Bearer "+h.Token)
		},
		FlushInterval: -1,
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode/100 == 2 {
				s.recordVerb(context.WithoutCancel(r.Context()), m, verb)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Method == http.MethodDelete {
				// The host is away: forget the machine now; the host
				// destroys its copy when it converges.
				s.recordVerb(context.WithoutCancel(r.Context()), m, verb)
				_ = api.WriteJSON(w, http.StatusOK, map[string]bool{"ok": true})
				return
			}
			api.WriteError(w, fmt.Errorf("machine %s runs on host %s (%s), which does not answer: %v: %w", m.Name, h.Name, h.Addr, err, errdefs.ErrUnavailable))
		},
	}
	rp.ServeHTTP(w, r)
}

// recordVerb records what a successful verb changed in the desired state.
func (s *Server) recordVerb(ctx context.Context, m Machine, verb string) {
	var err error
	switch strings.TrimSuffix(verb, " ") {
	case "DELETE":
		err = s.store.RemoveMachine(ctx, m.ID)
	case "POST stop":
		err = s.store.SetDesired(ctx, m.ID, "stopped")
	case "POST start", "POST restart":
		err = s.store.SetDesired(ctx, m.ID, "started")
	}
	if err != nil {
		s.log.Warn("record a machine verb in the desired state", "machine", m.ID, "verb", verb, "err", err)
	}
}
