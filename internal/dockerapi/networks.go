package dockerapi

import (
	"errors"
	"net/http"

	"github.com/moby/moby/api/types/network"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	fnet "github.com/ferryvm/ferry/internal/network"
)

// Docker's "bridge" is ferry's default network.
const dockerDefaultNet = "bridge"

func dockerNetName(n string) string {
	if n == fnet.DefaultNetwork {
		return dockerDefaultNet
	}
	return n
}

func ferryNetName(n string) string {
	if n == dockerDefaultNet {
		return fnet.DefaultNetwork
	}
	return n
}

// networkCreate is the body of POST /networks/create (the client's
// CreateOptions plus Name).
type networkCreate struct {
	Name       string
	Driver     string
	Internal   bool
	Attachable bool
	Ingress    bool
	EnableIPv6 *bool
	IPAM       *network.IPAM
	Options    map[string]string
	Labels     map[string]string
	ConfigOnly bool
	ConfigFrom *network.ConfigReference
	Scope      string
}

func dockerNetwork(n *fnet.Network) network.Network {
	out := network.Network{Name: dockerNetName(n.Name), ID: n.ID, Created: n.Created, Scope: "local", Driver: "bridge",
		EnableIPv4: true, EnableIPv6: n.IPv6(), Internal: n.Internal, Attachable: true, Labels: n.Labels,
		Options: map[string]string{"com.docker.network.bridge.name": n.Bridge},
		IPAM:    network.IPAM{Driver: "default", Config: []network.IPAMConfig{{Subnet: n.Subnet, Gateway: n.Gateway}}}}
	if n.IPv6() {
		out.IPAM.Config = append(out.IPAM.Config, network.IPAMConfig{Subnet: n.Subnet6, Gateway: n.Gateway6})
	}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	return out
}

func (s *Server) networks() (Networks, error) {
	if s.cfg.Networks == nil {
		return nil, errNotImplemented{"networks: this daemon runs without ferry's network service"}
	}
	return s.cfg.Networks, nil
}

func (s *Server) network(r *http.Request, ref string) (*fnet.Info, error) {
	ns, err := s.networks()
	if err != nil {
		return nil, err
	}
	info, err := ns.Inspect(r.Context(), ferryNetName(ref))
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, notFound("network %s not found", ref)
	}
	return info, err
}

// POST /networks/create
func (s *Server) createNetwork(w http.ResponseWriter, r *http.Request) error {
	ns, err := s.networks()
	if err != nil {
		return err
	}
	var req networkCreate
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	switch req.Driver {
	case "", "bridge":
	default:
		return invalid("network driver %q: ferry's networks are bridges (one per network) with their own subnet and DNS", req.Driver)
	}
	if req.ConfigOnly || req.ConfigFrom != nil || req.Ingress {
		return invalid("config-only, config-from and ingress networks are swarm features ferry does not have")
	}
	if req.Name == dockerDefaultNet || req.Name == "host" || req.Name == "none" {
		return &apiError{kind: errdefs.ErrConflict, msg: "network with name " + req.Name + " already exists"}
	}
	cr := fnet.CreateRequest{Name: req.Name, Internal: req.Internal, IPv6: req.EnableIPv6, Labels: req.Labels}
	if req.IPAM != nil {
		for _, c := range req.IPAM.Config {
			if c.Subnet.IsValid() {
				cr.Subnets = append(cr.Subnets, c.Subnet)
			}
			if c.Gateway.IsValid() {
				cr.Gateways = append(cr.Gateways, c.Gateway)
			}
		}
	}
	n, err := ns.Create(r.Context(), cr)
	if errors.Is(err, errdefs.ErrAlreadyExists) {
		return &apiError{kind: errdefs.ErrConflict, msg: "network with name " + req.Name + " already exists"}
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, network.CreateResponse{ID: n.ID, Warning: ""})
}

// GET /networks?filters=
func (s *Server) listNetworks(w http.ResponseWriter, r *http.Request) error {
	ns, err := s.networks()
	if err != nil {
		return err
	}
	f, err := parseFilters(r, "name", "id", "label", "driver", "type", "scope", "dangling")
	if err != nil {
		return err
	}
	list, err := ns.List(r.Context(), fnet.ListOptions{})
	if err != nil {
		return err
	}
	out := []network.Summary{}
	for _, n := range list {
		d := dockerNetwork(n)
		if !f.labels(n.Labels) ||
			!f.match("name", func(v string) bool { return containsStr(d.Name, v) }) ||
			!f.match("id", func(v string) bool { return len(v) <= len(d.ID) && d.ID[:len(v)] == v }) ||
			!f.match("driver", func(v string) bool { return v == "bridge" }) ||
			!f.match("scope", func(v string) bool { return v == "local" }) ||
			!f.match("type", func(v string) bool { return (v == "builtin") == (n.Name == fnet.DefaultNetwork) }) {
			continue
		}
		out = append(out, network.Summary{Network: d})
	}
	return writeJSON(w, http.StatusOK, out)
}

// GET /networks/{id}
func (s *Server) inspectNetwork(w http.ResponseWriter, r *http.Request) error {
	info, err := s.network(r, r.PathValue("id"))
	if err != nil {
		return err
	}
	out := network.Inspect{Network: dockerNetwork(info.Network), Containers: map[string]network.EndpointResource{}}
	for _, e := range info.Endpoints {
		res := network.EndpointResource{Name: e.Name, EndpointID: e.Tap, IPv4Address: e.IPv4, IPv6Address: e.IPv6}
		if m, err := s.cfg.Machines.Get("", e.MachineID); err == nil {
			res.Name = m.Name
		}
		out.Containers[containerID(e.MachineID)] = res
	}
	return writeJSON(w, http.StatusOK, out)
}

// DELETE /networks/{id}
func (s *Server) removeNetwork(w http.ResponseWriter, r *http.Request) error {
	info, err := s.network(r, r.PathValue("id"))
	if err != nil {
		return err
	}
	if info.Name == fnet.DefaultNetwork {
		return &apiError{kind: errdefs.ErrConflict, msg: "bridge is a pre-defined network and cannot be removed"}
	}
	ns, _ := s.networks()
	if err := ns.Remove(r.Context(), info.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// POST /networks/prune?filters=
func (s *Server) pruneNetworks(w http.ResponseWriter, r *http.Request) error {
	ns, err := s.networks()
	if err != nil {
		return err
	}
	f, err := parseFilters(r, "label", "until")
	if err != nil {
		return err
	}
	opts := fnet.ListOptions{}
	for _, l := range f["label"] {
		if opts.Labels == nil {
			opts.Labels = map[string]string{}
		}
		k, v, _ := cutEq(l)
		opts.Labels[k] = v
	}
	gone, err := ns.Prune(r.Context(), opts)
	if err != nil {
		return err
	}
	if gone == nil {
		gone = []string{}
	}
	return writeJSON(w, http.StatusOK, network.PruneReport{NetworksDeleted: gone})
}

// POST /networks/{id}/connect
func (s *Server) connectNetwork(w http.ResponseWriter, r *http.Request) error {
	info, err := s.network(r, r.PathValue("id"))
	if err != nil {
		return err
	}
	var req network.ConnectRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	m, err := s.container(req.Container)
	if err != nil {
		return err
	}
	ep := types.EndpointRequest{Network: info.Name}
	if c := req.EndpointConfig; c != nil {
		ep.Aliases = c.Aliases
		if c.IPAMConfig != nil {
			ep.IPv4, ep.IPv6 = c.IPAMConfig.IPv4Address, c.IPAMConfig.IPv6Address
		}
	}
	if _, err := s.cfg.Machines.Connect(r.Context(), "", m.ID, ep); err != nil {
		return containerErr(req.Container, err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// POST /networks/{id}/disconnect
func (s *Server) disconnectNetwork(w http.ResponseWriter, r *http.Request) error {
	info, err := s.network(r, r.PathValue("id"))
	if err != nil {
		return err
	}
	var req network.DisconnectRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	m, err := s.container(req.Container)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Machines.Disconnect(r.Context(), "", m.ID, info.Name); err != nil {
		return containerErr(req.Container, err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}
