package api

import (
	"context"
	"net/http"
	"net/netip"
	"strings"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/machine"
	"github.com/ferryvm/ferry/internal/network"
)

// The Networks API (docs/api.md has the reference):
//
//	POST   /v1/networks                      network.CreateRequest → network.Network
//	GET    /v1/networks[?label=K[=V]&name=S] → []network.Network
//	GET    /v1/networks/{ref}                → network.Info (the network and its endpoints)
//	DELETE /v1/networks/{ref}
//	POST   /v1/networks/prune[?label=K[=V]]  → PruneReply
//	POST   /v1/networks/{ref}/connect        ConnectRequest → types.Machine
//	POST   /v1/networks/{ref}/disconnect     ConnectRequest → types.Machine

// NetworkService is what the network handlers need (a *network.Service).
type NetworkService interface {
	Create(ctx context.Context, req network.CreateRequest) (*network.Network, error)
	List(ctx context.Context, opts network.ListOptions) ([]*network.Network, error)
	Inspect(ctx context.Context, ref string) (*network.Info, error)
	Remove(ctx context.Context, ref string) error
	Prune(ctx context.Context, opts network.ListOptions) ([]string, error)
}

// NetworkMembers is what connect and disconnect need (a *machine.Manager).
type NetworkMembers interface {
	Connect(ctx context.Context, app, ref string, ep types.EndpointRequest) (*types.Machine, error)
	Disconnect(ctx context.Context, app, ref, net string) (*types.Machine, error)
}

var (
	_ NetworkService = (*network.Service)(nil)
	_ NetworkMembers = (*machine.Manager)(nil)
)

// ConnectRequest is the body of connect and disconnect.
type ConnectRequest struct {
	App     string     `json:"app,omitempty"` // default "default"
	Machine string     `json:"machine"`       // ID, ID prefix or name
	Aliases []string   `json:"aliases,omitempty"`
	IPv4    netip.Addr `json:"ipv4,omitzero"`
	IPv6    netip.Addr `json:"ipv6,omitzero"`
}

// PruneReply lists the networks prune removed.
type PruneReply struct {
	Removed []string `json:"removed"`
}

// RegisterNetworks adds the Networks API routes to s.
func RegisterNetworks(s *Server, svc NetworkService, members NetworkMembers) {
	h := networkHandlers{svc, members}
	s.Handle("POST /v1/networks", h.create)
	s.Handle("GET /v1/networks", h.list)
	s.Handle("POST /v1/networks/prune", h.prune)
	s.Handle("GET /v1/networks/{ref}", h.inspect)
	s.Handle("DELETE /v1/networks/{ref}", h.remove)
	s.Handle("POST /v1/networks/{ref}/connect", h.connect)
	s.Handle("POST /v1/networks/{ref}/disconnect", h.disconnect)
}

type networkHandlers struct {
	svc     NetworkService
	members NetworkMembers
}

func listOptions(r *http.Request) network.ListOptions {
	q := r.URL.Query()
	o := network.ListOptions{Name: q.Get("name")}
	for _, l := range q["label"] {
		if o.Labels == nil {
			o.Labels = map[string]string{}
		}
		k, v, _ := strings.Cut(l, "=")
		o.Labels[k] = v
	}
	return o
}

func (h networkHandlers) create(w http.ResponseWriter, r *http.Request) error {
	var req network.CreateRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	n, err := h.svc.Create(r.Context(), req)
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusCreated, n)
}

func (h networkHandlers) list(w http.ResponseWriter, r *http.Request) error {
	list, err := h.svc.List(r.Context(), listOptions(r))
	if err != nil {
		return err
	}
	if list == nil {
		list = []*network.Network{}
	}
	return WriteJSON(w, http.StatusOK, list)
}

func (h networkHandlers) inspect(w http.ResponseWriter, r *http.Request) error {
	info, err := h.svc.Inspect(r.Context(), r.PathValue("ref"))
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, info)
}

func (h networkHandlers) remove(w http.ResponseWriter, r *http.Request) error {
	if err := h.svc.Remove(r.Context(), r.PathValue("ref")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h networkHandlers) prune(w http.ResponseWriter, r *http.Request) error {
	gone, err := h.svc.Prune(r.Context(), listOptions(r))
	if err != nil {
		return err
	}
	if gone == nil {
		gone = []string{}
	}
	return WriteJSON(w, http.StatusOK, PruneReply{Removed: gone})
}

func (h networkHandlers) connect(w http.ResponseWriter, r *http.Request) error {
	var req ConnectRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	info, err := h.svc.Inspect(r.Context(), r.PathValue("ref"))
	if err != nil {
		return err
	}
	m, err := h.members.Connect(r.Context(), appOrDefault(req.App), req.Machine,
		types.EndpointRequest{Network: info.Name, Aliases: req.Aliases, IPv4: req.IPv4, IPv6: req.IPv6})
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, m)
}

func (h networkHandlers) disconnect(w http.ResponseWriter, r *http.Request) error {
	var req ConnectRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	name := r.PathValue("ref")
	if info, err := h.svc.Inspect(r.Context(), name); err == nil {
		name = info.Name
	}
	m, err := h.members.Disconnect(r.Context(), appOrDefault(req.App), req.Machine, name)
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, m)
}

func appOrDefault(app string) string {
	if app == "" {
		return "default"
	}
	return app
}
