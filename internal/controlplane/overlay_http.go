package controlplane

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/ferryvm/ferry/internal/network"
)

// overlayRoutes serves the overlay's part of the API:
//
//	POST /v1/networks                {name} → OverlayNetwork (201; an existing one as it is)
//	GET  /v1/networks                → []OverlayNetwork
//	POST /v1/hosts/{id}/overlay      OverlayReport → []network.Overlay (SyncOverlay)
func (s *Server) overlayRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/networks", s.createNetwork)
	mux.HandleFunc("GET /v1/networks", s.listNetworks)
	mux.HandleFunc("POST /v1/hosts/{id}/overlay", s.syncOverlay)
}

func (s *Server) createNetwork(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "create network: body is not {name}: "+err.Error())
		return
	}
	n, err := s.store.CreateNetwork(r.Context(), req.Name, "")
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, n)
}

func (s *Server) listNetworks(w http.ResponseWriter, r *http.Request) {
	nets, err := s.store.Networks(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	if nets == nil {
		nets = []OverlayNetwork{}
	}
	writeJSON(w, http.StatusOK, nets)
}

func (s *Server) syncOverlay(w http.ResponseWriter, r *http.Request) {
	var rep OverlayReport
	if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
		writeError(w, http.StatusBadRequest, "overlay sync: body is not an overlay report: "+err.Error())
		return
	}
	ovs, err := s.store.SyncOverlay(r.Context(), r.PathValue("id"), rep)
	if err != nil {
		s.fail(w, err)
		return
	}
	if ovs == nil {
		ovs = []network.Overlay{}
	}
	writeJSON(w, http.StatusOK, ovs)
}

// OverlayHost is what the overlay agent needs of the host's networks
// (*network.Service).
type OverlayHost interface {
	OverlayMachines(ctx context.Context, networks []string) (map[string][]network.RemoteMachine, error)
	SetOverlays(ctx context.Context, local netip.Addr, ovs []network.Overlay) error
}

// OverlayAgent keeps a host's overlays in step with the control plane:
// every Interval it reports the host's machines on them and applies what
// it gets back (networks, VXLAN devices, peers, remote names). While the
// control plane is away the kernel keeps the last lists, so machines keep
// reaching each other.
type OverlayAgent struct {
	Agent    *Agent // URL, Token, Host.ID and the HTTP client
	Underlay netip.Addr
	Networks OverlayHost
	Interval time.Duration // default 2 s
	Log      *slog.Logger

	mu    sync.Mutex
	names []string // the overlays of the last sync
}

// Run syncs until ctx ends.
func (o *OverlayAgent) Run(ctx context.Context) {
	if o.Interval <= 0 {
		o.Interval = 2 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Agent.Client == nil {
		o.Agent.Client = &http.Client{Timeout: 5 * time.Second}
	}
	var lastErr string
	for ctx.Err() == nil {
		ovs, err := o.sync(ctx)
		if err == nil {
			err = o.Networks.SetOverlays(ctx, o.Underlay, ovs)
		}
		if err != nil && ctx.Err() == nil && err.Error() != lastErr {
			o.Log.Warn("overlay sync", "err", err)
		}
		if err != nil {
			lastErr = err.Error()
		} else {
			lastErr = ""
		}
		select {
		case <-ctx.Done():
		case <-time.After(o.Interval):
		}
	}
}

// sync reports the host's machines on the overlays of the last sync and
// returns the overlays now.
func (o *OverlayAgent) sync(ctx context.Context) ([]network.Overlay, error) {
	o.mu.Lock()
	names := slices.Clone(o.names)
	o.mu.Unlock()
	ms, err := o.Networks.OverlayMachines(ctx, names)
	if err != nil {
		return nil, err
	}
	var ovs []network.Overlay
	if err := o.Agent.call(ctx, "/v1/hosts/"+o.Agent.Host.ID+"/overlay", OverlayReport{Underlay: o.Underlay, Machines: ms}, &ovs); err != nil {
		return nil, err
	}
	names = names[:0]
	for _, ov := range ovs {
		names = append(names, ov.Network)
	}
	o.mu.Lock()
	o.names = names
	o.mu.Unlock()
	return ovs, nil
}

// AppOverlay syncs now and returns app's overlay, nil when the control
// plane has none for it (network.AppOverlay): an app network made before
// the loop's first sync gets the control plane's subnets.
func (o *OverlayAgent) AppOverlay(ctx context.Context, app string) (*network.Overlay, error) {
	ovs, err := o.sync(ctx)
	if err != nil {
		return nil, err
	}
	for _, ov := range ovs {
		if ov.App == app && ov.Network == network.AppNetworkName(app) {
			return &ov, nil
		}
	}
	return nil, nil
}
