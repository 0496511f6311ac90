package dockerapi

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"

	"github.com/ferryvm/ferry/internal/api/types"
)

// The views below are the machine as Docker's types: one function each, so
// `docker inspect` and `ferry inspect` read the same record.

// dockerState is a machine state in Docker's words.
func dockerState(m *types.Machine) container.ContainerState {
	switch m.State {
	case types.StateCreated:
		return container.StateCreated
	case types.StateStarting, types.StateStarted, types.StateStopping:
		return container.StateRunning
	case types.StateDestroying, types.StateDestroyed:
		return container.StateRemoving
	case types.StateFailed:
		if m.LastExit == nil && m.StartedAt.IsZero() {
			return container.StateCreated
		}
	}
	return container.StateExited
}

// exitCode is the last exit's code (128+signal when killed, as Docker
// reports it).
func exitCode(e *types.Exit) int {
	if e == nil {
		return 0
	}
	if e.Signal != 0 && e.ExitCode == 0 {
		return 128 + e.Signal
	}
	return e.ExitCode
}

func dockerTime(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// argv is what the machine runs: the entrypoint and command after its
// config's overrides of the image's.
func argv(m *types.Machine) []string {
	in := m.Config.Init
	if len(in.Exec) > 0 {
		return in.Exec
	}
	ep, cmd := m.ImageConfig.Entrypoint, m.ImageConfig.Cmd
	if in.Entrypoint != nil {
		ep, cmd = in.Entrypoint, nil
	}
	if in.Cmd != nil {
		cmd = in.Cmd
	}
	return append(append([]string{}, ep...), cmd...)
}

// labels are the machine's metadata.
func labels(m *types.Machine) map[string]string {
	out := make(map[string]string, len(m.Config.Metadata))
	for k, v := range m.Config.Metadata {
		out[k] = v
	}
	return out
}

func imageID(m *types.Machine) string { return m.ImageRef.Digest }

// portKey is Docker's "80/tcp".
func portKey(n int, proto string) network.Port {
	p, _ := network.PortFrom(uint16(n), network.IPProtocol(proto))
	return p
}

// portBindings are the configured published ports.
func portBindings(c types.Config) network.PortMap {
	pm := network.PortMap{}
	for _, s := range c.Services {
		k := portKey(s.InternalPort, s.Protocol)
		for _, p := range s.Ports {
			b := network.PortBinding{}
			if p.Port != 0 {
				b.HostPort = strconv.Itoa(p.Port)
			}
			b.HostIP, _ = netip.ParseAddr(p.HostIP)
			pm[k] = append(pm[k], b)
		}
	}
	return pm
}

// livePorts are the ports as published now (host ports chosen), keyed as
// Docker keys them; every configured port appears, bound or not.
func livePorts(m *types.Machine) network.PortMap {
	pm := network.PortMap{}
	for _, s := range m.Config.Services {
		pm[portKey(s.InternalPort, s.Protocol)] = nil
	}
	if m.Network == nil {
		return pm
	}
	for _, p := range m.Network.Ports {
		k := portKey(p.GuestPort, p.Protocol)
		ip, _ := netip.ParseAddr(p.HostIP)
		if !ip.IsValid() {
			ip = netip.IPv4Unspecified()
		}
		pm[k] = append(pm[k], network.PortBinding{HostIP: ip, HostPort: strconv.Itoa(p.HostPort)})
	}
	return pm
}

// endpoints are the machine's NICs as Docker's endpoint settings, keyed by
// network name.
func endpoints(m *types.Machine) map[string]*network.EndpointSettings {
	out := map[string]*network.EndpointSettings{}
	if m.Network == nil {
		for _, n := range m.Config.Networks {
			out[dockerNetName(n.Network)] = &network.EndpointSettings{Aliases: n.Aliases}
		}
		if len(out) == 0 {
			out[dockerDefaultNet] = &network.EndpointSettings{}
		}
		return out
	}
	for _, e := range m.Network.Endpoints {
		s := &network.EndpointSettings{NetworkID: e.NetworkID, EndpointID: e.Tap, Gateway: e.Gateway,
			IPAddress: e.IPv4.Addr(), IPPrefixLen: e.IPv4.Bits(), IPv6Gateway: e.Gateway6,
			Aliases: e.Aliases, DNSNames: append([]string{e.Name}, e.Aliases...)}
		if e.IPv6.IsValid() {
			s.GlobalIPv6Address, s.GlobalIPv6PrefixLen = e.IPv6.Addr(), e.IPv6.Bits()
		}
		if hw, err := net.ParseMAC(e.MAC); err == nil {
			s.MacAddress = network.HardwareAddr(hw)
		}
		out[dockerNetName(e.Network)] = s
	}
	return out
}

// networkMode is the network a container was created on, as Docker names it.
func networkMode(m *types.Machine) string {
	if len(m.Config.Networks) > 0 {
		return dockerNetName(m.Config.Networks[0].Network)
	}
	return dockerDefaultNet
}

func restartView(r types.Restart) container.RestartPolicy {
	switch r.Policy {
	case types.RestartAlways:
		return container.RestartPolicy{Name: container.RestartPolicyAlways}
	case types.RestartOnFailure:
		return container.RestartPolicy{Name: container.RestartPolicyOnFailure, MaximumRetryCount: r.MaxRetries}
	}
	return container.RestartPolicy{Name: container.RestartPolicyDisabled}
}

func hostConfig(m *types.Machine) *container.HostConfig {
	c := m.Config
	h := &container.HostConfig{NetworkMode: container.NetworkMode(networkMode(m)), PortBindings: portBindings(c),
		RestartPolicy: restartView(c.Restart), AutoRemove: c.AutoDestroy, ExtraHosts: c.ExtraHosts,
		LogConfig: container.LogConfig{Type: "json-file"}, Runtime: "ferry"}
	h.Memory = int64(c.Guest.MemoryMB) << 20
	h.NanoCPUs = int64(c.Guest.CPUs) * 1e9
	for _, d := range c.DNS {
		if a, err := netip.ParseAddr(d); err == nil {
			h.DNS = append(h.DNS, a)
		}
	}
	for _, mt := range c.Mounts {
		switch mt.Kind() {
		case types.MountBind:
			h.Binds = append(h.Binds, bindSpec(mt.Source, mt))
			continue
		case types.MountVolume:
			if mt.Volume != "" {
				h.Binds = append(h.Binds, bindSpec(mt.Volume, mt))
			}
			continue
		}
		if h.Tmpfs == nil {
			h.Tmpfs = map[string]string{}
		}
		opt := ""
		if mt.SizeMB > 0 {
			opt = fmt.Sprintf("size=%dm", mt.SizeMB)
		}
		h.Tmpfs[mt.Path] = opt
	}
	return h
}

func bindSpec(src string, mt types.Mount) string {
	s := src + ":" + mt.Path
	if mt.ReadOnly {
		s += ":ro"
	}
	return s
}

// mountPoints are the machine's volumes and bind mounts as docker inspect
// shows them.
func mountPoints(m *types.Machine) []container.MountPoint {
	out := []container.MountPoint{}
	for _, mt := range m.Config.Mounts {
		p := container.MountPoint{Destination: mt.Path, RW: !mt.ReadOnly, Propagation: mount.PropagationRPrivate}
		switch mt.Kind() {
		case types.MountBind:
			p.Type, p.Source = mount.TypeBind, mt.Source
		case types.MountVolume:
			p.Type, p.Name, p.Driver = mount.TypeVolume, mt.Volume, "local"
		default:
			continue
		}
		out = append(out, p)
	}
	return out
}

func containerConfig(m *types.Machine) *container.Config {
	c := m.Config
	cfg := &container.Config{Hostname: c.Hostname, User: c.Init.User, Tty: c.Init.TTY, OpenStdin: c.Init.Attach,
		AttachStdin: c.Init.Attach, AttachStdout: true, AttachStderr: true, Image: c.Image,
		WorkingDir: c.Init.WorkingDir, Labels: labels(m), Entrypoint: c.Init.Entrypoint, Cmd: c.Init.Cmd}
	if cfg.Hostname == "" {
		cfg.Hostname = m.Name
	}
	if cfg.User == "" {
		cfg.User = m.ImageConfig.User
	}
	if cfg.WorkingDir == "" {
		cfg.WorkingDir = m.ImageConfig.WorkingDir
	}
	if cfg.Entrypoint == nil {
		cfg.Entrypoint = m.ImageConfig.Entrypoint
	}
	if c.Init.Cmd == nil && c.Init.Entrypoint == nil {
		cfg.Cmd = m.ImageConfig.Cmd
	}
	cfg.Healthcheck = healthConfigView(m)
	cfg.Env = append(cfg.Env, m.ImageConfig.Env...)
	for _, k := range sortedKeys(c.Env) {
		cfg.Env = append(cfg.Env, k+"="+c.Env[k])
	}
	if len(c.Services) > 0 {
		cfg.ExposedPorts = network.PortSet{}
		for _, s := range c.Services {
			cfg.ExposedPorts[portKey(s.InternalPort, s.Protocol)] = struct{}{}
		}
	}
	return cfg
}

// inspect is GET /containers/{id}/json.
func inspect(m *types.Machine) container.InspectResponse {
	av := argv(m)
	st := &container.State{Status: dockerState(m), Pid: m.PID, Error: m.Error, StartedAt: dockerTime(m.StartedAt),
		FinishedAt: dockerTime(time.Time{})}
	st.Running = st.Status == container.StateRunning
	st.Health = healthView(m.Health)
	if e := m.LastExit; e != nil {
		st.ExitCode, st.OOMKilled, st.FinishedAt = exitCode(e), e.OOMKilled, dockerTime(e.ExitedAt)
	}
	if m.State == types.StateFailed && st.ExitCode == 0 {
		st.ExitCode = 128
	}
	r := container.InspectResponse{ID: containerID(m.ID), Created: dockerTime(m.CreatedAt), State: st,
		Image: imageID(m), Name: "/" + m.Name, RestartCount: m.Restarts, Driver: "ferry", Platform: "linux",
		HostConfig: hostConfig(m), Config: containerConfig(m), Mounts: mountPoints(m),
		NetworkSettings: &container.NetworkSettings{Ports: livePorts(m), Networks: endpoints(m)},
		LogPath:         "", ExecIDs: nil}
	if len(av) > 0 {
		r.Path, r.Args = av[0], av[1:]
	}
	return r
}

// summary is one entry of GET /containers/json.
func summary(m *types.Machine) container.Summary {
	s := container.Summary{ID: containerID(m.ID), Names: []string{"/" + m.Name}, Image: m.Config.Image,
		ImageID: imageID(m), Command: strings.Join(argv(m), " "), Created: m.CreatedAt.Unix(),
		Labels: labels(m), State: dockerState(m), Status: statusText(m), Ports: []container.PortSummary{},
		NetworkSettings: &container.NetworkSettingsSummary{Networks: endpoints(m)}, Mounts: mountPoints(m),
		Health: healthSummary(m.Health)}
	s.HostConfig.NetworkMode = networkMode(m)
	for k, bs := range livePorts(m) {
		if len(bs) == 0 {
			s.Ports = append(s.Ports, container.PortSummary{PrivatePort: k.Num(), Type: string(k.Proto())})
		}
		for _, b := range bs {
			hp, _ := strconv.Atoi(b.HostPort)
			s.Ports = append(s.Ports, container.PortSummary{IP: b.HostIP, PrivatePort: k.Num(), PublicPort: uint16(hp), Type: string(k.Proto())})
		}
	}
	return s
}

// statusText is docker ps's STATUS column.
func statusText(m *types.Machine) string {
	now := time.Now()
	switch dockerState(m) {
	case container.StateRunning:
		return "Up " + units.HumanDuration(now.Sub(m.StartedAt)) + m.Health.Note()
	case container.StateCreated:
		return "Created"
	case container.StateRemoving:
		return "Removal In Progress"
	}
	if m.LastExit == nil {
		return "Exited (128)"
	}
	return fmt.Sprintf("Exited (%d) %s ago", exitCode(m.LastExit), units.HumanDuration(now.Sub(m.LastExit.ExitedAt)))
}
