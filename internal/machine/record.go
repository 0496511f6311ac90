package machine

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
)

// record is a machine as the store keeps it: private to this package and
// versioned, so the API's JSON can change without changing what is on disk
// (and the other way round). V is recordVersion; records written before
// versions existed have none (V 0) and the same shape. A record from a
// newer ferry is refused, not misread. testdata/record-v0-*.json are
// records written by the daemon before this type existed; store_test.go
// loads them.
//
// The machine's config is kept in its API shape (types.Config), as Docker
// keeps a container's config: it is what the user wrote, and a change to
// it is an API change that must keep reading old configs anyway.
type record struct {
	V             int               `json:"v,omitempty"`
	ID            string            `json:"id"`
	Name          string            `json:"name"`
	App           string            `json:"app"`
	State         string            `json:"state"`
	Config        types.Config      `json:"config"`
	Version       int               `json:"version"`
	ImageRef      imageRefRecord    `json:"image_ref"`
	ImageConfig   imageConfigRecord `json:"image_config"`
	CreatedAt     time.Time         `json:"created_at"`
	UpdatedAt     time.Time         `json:"updated_at"`
	PID           int               `json:"pid,omitempty"`
	StartedAt     time.Time         `json:"started_at,omitzero"`
	Network       *networkRecord    `json:"network,omitempty"`
	Emulated      bool              `json:"emulated,omitempty"`
	Driver        string            `json:"driver,omitempty"`
	Warm          bool              `json:"warm,omitempty"`
	Restarts      int               `json:"restarts"`
	StopRequested bool              `json:"stop_requested,omitempty"`
	LastExit      *exitRecord       `json:"last_exit,omitempty"`
	Error         string            `json:"error,omitempty"`
	Events        []eventRecord     `json:"events,omitempty"`
}

const recordVersion = 1

type imageRefRecord struct {
	Ref    string `json:"ref"`
	Digest string `json:"digest,omitempty"`
}

type imageConfigRecord struct {
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	Env        []string `json:"env,omitempty"`
	User       string   `json:"user,omitempty"`
	WorkingDir string   `json:"working_dir,omitempty"`
	// Healthcheck is kept in its API shape, as Config is.
	Healthcheck *types.Healthcheck `json:"healthcheck,omitempty"`
}

// networkRecord is a machine's network as recorded: its endpoints, or,
// in records written before machines had several networks, one NIC's
// tap, mac, addresses and gateway (read as its one endpoint).
type networkRecord struct {
	Endpoints []endpointRecord `json:"endpoints,omitempty"`
	Ports     []portRecord     `json:"ports,omitempty"`
	DNS       []string         `json:"dns,omitempty"`
	Search    []string         `json:"search,omitempty"`
	NetNS     string           `json:"netns,omitempty"`

	// Before multiple networks (read only).
	Tap       string   `json:"tap,omitempty"`
	MAC       string   `json:"mac,omitempty"`
	Addresses []string `json:"addresses,omitempty"`
	Gateway   string   `json:"gateway,omitempty"`
}

type endpointRecord struct {
	NetworkID string       `json:"network_id"`
	Network   string       `json:"network"`
	Name      string       `json:"name"`
	App       string       `json:"app,omitempty"`
	Aliases   []string     `json:"aliases,omitempty"`
	Tap       string       `json:"tap"`
	MAC       string       `json:"mac"`
	IPv4      netip.Prefix `json:"ipv4"`
	Gateway   netip.Addr   `json:"gateway,omitzero"`
	IPv6      netip.Prefix `json:"ipv6,omitzero"`
	Gateway6  netip.Addr   `json:"gateway6,omitzero"`
	MTU       int          `json:"mtu,omitempty"`
	Requested netip.Addr   `json:"requested,omitzero"`
}

type portRecord struct {
	Protocol  string `json:"protocol"`
	HostIP    string `json:"host_ip,omitempty"`
	HostPort  int    `json:"host_port"`
	GuestPort int    `json:"guest_port"`
}

type exitRecord struct {
	ExitCode      int       `json:"exit_code"`
	Signal        int       `json:"signal,omitempty"`
	OOMKilled     bool      `json:"oom_killed,omitempty"`
	RequestedStop bool      `json:"requested_stop,omitempty"`
	ExitedAt      time.Time `json:"exited_at"`
	Unknown       bool      `json:"unknown,omitempty"`
}

type eventRecord struct {
	Type      string      `json:"type"`
	MachineID string      `json:"machine_id"`
	App       string      `json:"app"`
	State     string      `json:"state"`
	Status    string      `json:"status,omitempty"`
	Exit      *exitRecord `json:"exit,omitempty"`
	Time      time.Time   `json:"time"`
}

// toRecord and fromRecord are the one conversion each way between a
// machine and its record.
func toRecord(m *types.Machine) *record {
	r := &record{V: recordVersion, ID: m.ID, Name: m.Name, App: m.App, State: string(m.State), Config: cloneConfig(m.Config),
		Version: m.Version, ImageRef: imageRefRecord(m.ImageRef), ImageConfig: imageConfigRecord(cloneImageConfig(m.ImageConfig)),
		CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt, PID: m.PID, StartedAt: m.StartedAt, Emulated: m.Emulated, Warm: m.Warm,
		Driver: m.Driver, Restarts: m.Restarts, StopRequested: m.StopRequested, LastExit: toExitRecord(m.LastExit), Error: m.Error}
	if n := m.Network; n != nil {
		r.Network = &networkRecord{DNS: cloneSlice(n.DNS), Search: cloneSlice(n.Search), NetNS: n.NetNS}
		for _, e := range n.Endpoints {
			er := endpointRecord(e)
			er.Aliases = cloneSlice(e.Aliases)
			r.Network.Endpoints = append(r.Network.Endpoints, er)
		}
		for _, p := range n.Ports {
			r.Network.Ports = append(r.Network.Ports, portRecord(p))
		}
	}
	for _, e := range m.Events {
		r.Events = append(r.Events, eventRecord{Type: e.Type, MachineID: e.MachineID, App: e.App, State: string(e.State),
			Status: e.Status, Exit: toExitRecord(e.Exit), Time: e.Time})
	}
	return r
}

func fromRecord(r *record) *types.Machine {
	m := &types.Machine{ID: r.ID, Name: r.Name, App: r.App, State: types.State(r.State), Config: cloneConfig(r.Config),
		Version: r.Version, ImageRef: types.ImageRef(r.ImageRef), ImageConfig: cloneImageConfig(types.ImageConfig(r.ImageConfig)),
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, PID: r.PID, StartedAt: r.StartedAt, Emulated: r.Emulated, Warm: r.Warm,
		Driver: r.Driver, Restarts: r.Restarts, StopRequested: r.StopRequested, LastExit: fromExitRecord(r.LastExit), Error: r.Error}
	if n := r.Network; n != nil {
		m.Network = &types.Network{DNS: cloneSlice(n.DNS), Search: cloneSlice(n.Search), NetNS: n.NetNS}
		for _, e := range n.Endpoints {
			te := types.Endpoint(e)
			te.Aliases = cloneSlice(e.Aliases)
			m.Network.Endpoints = append(m.Network.Endpoints, te)
		}
		if len(n.Endpoints) == 0 && n.Tap != "" {
			m.Network.Endpoints = []types.Endpoint{legacyEndpoint(n)}
		}
		for _, p := range n.Ports {
			m.Network.Ports = append(m.Network.Ports, types.PortMapping(p))
		}
	}
	for _, e := range r.Events {
		m.Events = append(m.Events, types.Event{Type: e.Type, MachineID: e.MachineID, App: e.App, State: types.State(e.State),
			Status: e.Status, Exit: fromExitRecord(e.Exit), Time: e.Time})
	}
	return m
}

// legacyEndpoint reads the one NIC of a record written before machines had
// several networks.
func legacyEndpoint(n *networkRecord) types.Endpoint {
	e := types.Endpoint{Tap: n.Tap, MAC: n.MAC}
	if len(n.Addresses) > 0 {
		e.IPv4, _ = netip.ParsePrefix(n.Addresses[0])
	}
	e.Gateway, _ = netip.ParseAddr(n.Gateway)
	return e
}

func toExitRecord(e *types.Exit) *exitRecord {
	if e == nil {
		return nil
	}
	r := exitRecord(*e)
	return &r
}

func fromExitRecord(r *exitRecord) *types.Exit {
	if r == nil {
		return nil
	}
	e := types.Exit(*r)
	return &e
}

func cloneImageConfig(c types.ImageConfig) types.ImageConfig {
	return types.ImageConfig{Entrypoint: cloneSlice(c.Entrypoint), Cmd: cloneSlice(c.Cmd), Env: cloneSlice(c.Env), User: c.User, WorkingDir: c.WorkingDir,
		Healthcheck: cloneHealthcheck(c.Healthcheck)}
}

func encodeRecord(m *types.Machine) ([]byte, error) { return json.Marshal(toRecord(m)) }

func decodeRecord(k, v []byte) (*types.Machine, error) {
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("machine %s: %w", k, err)
	}
	if r.V > recordVersion {
		return nil, fmt.Errorf("machine %s: record version %d is newer than this ferry's %d; run the newer ferry: %w",
			k, r.V, recordVersion, errdefs.ErrConflict)
	}
	return fromRecord(&r), nil
}
