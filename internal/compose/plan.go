package compose

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	ctypes "github.com/compose-spec/compose-go/v2/types"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/network"
)

// Labels recorded in a machine's metadata (and a network's labels) so ps,
// down and a second up find the project's machines. They are Docker
// Compose's, so Docker-API clients see what they expect.
const (
	LabelProject    = "com.docker.compose.project"
	LabelService    = "com.docker.compose.service"
	LabelNumber     = "com.docker.compose.container-number"
	LabelConfigHash = "com.docker.compose.config-hash"
	LabelOneOff     = "com.docker.compose.oneoff"
	LabelNetwork    = "com.docker.compose.network"
)

// Plan is what a project asks of the daemon.
type Plan struct {
	Project  string // also the ferry app its machines and volumes live in
	Networks []network.CreateRequest
	Services map[string]*Service
	Volumes  []string // the project's named volumes (not external)
}

// Service is one service's desired machines.
type Service struct {
	Name         string
	Hash         string // of Config: a changed hash recreates the service
	Config       types.Config
	Scale        int
	ExplicitName string // container_name
	DependsOn    ctypes.DependsOnConfig
	Build        *Build            // nil: the image is pulled
	Pull         string            // pull_policy
	Stop         types.StopRequest // stop_signal, stop_grace_period: how down and a recreate stop it
	files        []stagedDir       // secrets and configs, staged before a create
}

// MachineName is replica n's machine name, PROJECT-SERVICE-N.
func (p *Plan) MachineName(s *Service, n int) string {
	if s.ExplicitName != "" {
		return s.ExplicitName
	}
	return fmt.Sprintf("%s-%s-%d", p.Project, s.Name, n)
}

// Request is the create request of replica n of s.
func (p *Plan) Request(s *Service, n int) types.CreateRequest {
	cfg := s.Config
	cfg.Metadata = map[string]string{
		LabelProject: p.Project, LabelService: s.Name,
		LabelNumber: strconv.Itoa(n), LabelConfigHash: s.Hash, LabelOneOff: "False",
	}
	for k, v := range s.Config.Metadata {
		cfg.Metadata[k] = v
	}
	return types.CreateRequest{Name: p.MachineName(s, n), Config: cfg}
}

// NewPlan turns a loaded project into a plan; scale overrides replicas
// (--scale SVC=N).
func NewPlan(proj *ctypes.Project, scale map[string]int) (*Plan, error) {
	p := &Plan{Project: proj.Name, Services: map[string]*Service{}}
	for _, name := range slices.Sorted(mapKeys(proj.Networks)) {
		n := proj.Networks[name]
		if bool(n.External) {
			continue
		}
		labels := map[string]string{LabelProject: proj.Name, LabelNetwork: name}
		for k, v := range n.Labels {
			labels[k] = v
		}
		p.Networks = append(p.Networks, network.CreateRequest{Name: n.Name, Internal: n.Internal, Labels: labels})
	}
	for _, name := range slices.Sorted(mapKeys(proj.Volumes)) {
		if v := proj.Volumes[name]; !bool(v.External) {
			p.Volumes = append(p.Volumes, v.Name)
		}
	}
	for name, sc := range proj.Services {
		s, err := newService(proj, sc)
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", name, err)
		}
		if n, ok := scale[name]; ok {
			s.Scale = n
		}
		p.Services[name] = s
	}
	for name := range scale {
		if _, ok := p.Services[name]; !ok {
			return nil, fmt.Errorf("--scale %s: no such service in project %s: %w", name, proj.Name, errdefs.ErrInvalidArgument)
		}
	}
	if _, err := p.Order(); err != nil {
		return nil, err
	}
	return p, nil
}

func newService(proj *ctypes.Project, sc ctypes.ServiceConfig) (*Service, error) {
	s := &Service{Name: sc.Name, Scale: 1, ExplicitName: sc.ContainerName, DependsOn: sc.DependsOn}
	if sc.Deploy != nil && sc.Deploy.Replicas != nil {
		s.Scale = *sc.Deploy.Replicas
	}
	if sc.Scale != nil {
		s.Scale = *sc.Scale
	}
	if s.ExplicitName != "" && s.Scale > 1 {
		return nil, fmt.Errorf("container_name %s cannot be used with %d replicas: %w", s.ExplicitName, s.Scale, errdefs.ErrInvalidArgument)
	}
	for dep, d := range sc.DependsOn {
		if _, ok := proj.Services[dep]; !ok && d.Required {
			return nil, fmt.Errorf("depends_on %s: no such service: %w", dep, errdefs.ErrInvalidArgument)
		}
	}
	cfg, err := machineConfig(proj, sc)
	if err != nil {
		return nil, err
	}
	if s.Build, err = newBuild(proj, sc, cfg.Image); err != nil {
		return nil, err
	}
	s.Pull = sc.PullPolicy
	if s.Stop.Signal = sc.StopSignal; s.Stop.Signal != "" {
		if _, err := api.ParseSignal(s.Stop.Signal); err != nil {
			return nil, fmt.Errorf("stop_signal: %w", err)
		}
	}
	switch s.Pull {
	case "", ctypes.PullPolicyMissing, ctypes.PullPolicyIfNotPresent, ctypes.PullPolicyAlways, ctypes.PullPolicyNever, ctypes.PullPolicyBuild, ctypes.PullPolicyRefresh:
	default:
		return nil, fmt.Errorf("pull_policy %s: want always, missing, never, build or refresh: %w", s.Pull, errdefs.ErrInvalidArgument)
	}
	if sc.StopGracePeriod != nil {
		s.Stop.Timeout = time.Duration(*sc.StopGracePeriod).String()
	}
	if s.files, err = secretFiles(proj, sc); err != nil {
		return nil, err
	}
	cfg.Mounts = append(cfg.Mounts, stagedMounts(s.files)...)
	s.Config = cfg
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	if len(s.files) > 0 {
		b = append(b, digest(s.files)...) // a changed secret recreates too
	}
	sum := sha256.Sum256(b)
	s.Hash = hex.EncodeToString(sum[:])
	return s, nil
}

// machineConfig is a replica's machine configuration (labels aside).
func machineConfig(proj *ctypes.Project, sc ctypes.ServiceConfig) (types.Config, error) {
	cfg := types.Config{Image: sc.Image, Hostname: sc.Hostname, DNS: sc.DNS, ExtraHosts: sc.ExtraHosts.AsList(":")}
	if cfg.Image == "" {
		if sc.Build == nil {
			return cfg, fmt.Errorf("neither image nor build is set: %w", errdefs.ErrInvalidArgument)
		}
		cfg.Image = proj.Name + "-" + sc.Name
	}
	cfg.Init.Entrypoint, cfg.Init.Cmd = sc.Entrypoint, sc.Command
	if cfg.Init.Entrypoint != nil && cfg.Init.Cmd == nil {
		cfg.Init.Cmd = []string{} // Docker: a new entrypoint drops the image's cmd
	}
	cfg.Init.User, cfg.Init.WorkingDir, cfg.Init.TTY = sc.User, sc.WorkingDir, sc.Tty
	if len(sc.Environment) > 0 {
		cfg.Env = map[string]string{}
		for k, v := range sc.Environment {
			if v != nil {
				cfg.Env[k] = *v
			}
		}
	}
	if len(sc.Labels) > 0 {
		cfg.Metadata = map[string]string(sc.Labels)
	}
	var err error
	if cfg.Restart, err = types.ParseRestart(sc.Restart); err != nil {
		return cfg, err
	}
	if sc.Deploy != nil && sc.Deploy.Resources.Limits != nil {
		l := sc.Deploy.Resources.Limits
		cfg.Guest.CPUs = int(math.Ceil(float64(l.NanoCPUs)))
		cfg.Guest.MemoryMB = int((int64(l.MemoryBytes) + 1<<20 - 1) >> 20)
	}
	if sc.MemLimit > 0 && cfg.Guest.MemoryMB == 0 {
		cfg.Guest.MemoryMB = int((int64(sc.MemLimit) + 1<<20 - 1) >> 20)
	}
	if sc.CPUS > 0 && cfg.Guest.CPUs == 0 {
		cfg.Guest.CPUs = int(math.Ceil(float64(sc.CPUS)))
	}
	if cfg.Services, err = ports(sc.Ports); err != nil {
		return cfg, err
	}
	if cfg.Mounts, err = mounts(proj, sc); err != nil {
		return cfg, err
	}
	for _, name := range slices.Sorted(mapKeys(sc.Networks)) {
		n, ok := proj.Networks[name]
		if !ok {
			return cfg, fmt.Errorf("network %s: not declared in the top-level networks: %w", name, errdefs.ErrInvalidArgument)
		}
		ep := types.EndpointRequest{Network: n.Name, Aliases: []string{sc.Name}}
		if sn := sc.Networks[name]; sn != nil {
			if !sn.ServiceNameAliasEnabled() {
				ep.Aliases = nil
			}
			ep.Aliases = append(ep.Aliases, sn.Aliases...)
		}
		cfg.Networks = append(cfg.Networks, ep)
	}
	if cfg.Healthcheck, err = healthcheck(sc.HealthCheck); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func ports(in []ctypes.ServicePortConfig) ([]types.Service, error) {
	var out []types.Service
	for _, pc := range in {
		svc := types.Service{Protocol: pc.Protocol, InternalPort: int(pc.Target)}
		if svc.Protocol == "" {
			svc.Protocol = "tcp"
		}
		hp := 0
		if pc.Published != "" {
			n, err := strconv.Atoi(pc.Published)
			if err != nil || n < 0 || n > 65535 {
				return nil, fmt.Errorf("port %s:%d: the published port must be one port number (ranges are not supported): %w", pc.Published, pc.Target, errdefs.ErrInvalidArgument)
			}
			hp = n
		}
		svc.Ports = []types.Port{{Port: hp, HostIP: pc.HostIP}}
		out = append(out, svc)
	}
	return out, nil
}

func mounts(proj *ctypes.Project, sc ctypes.ServiceConfig) ([]types.Mount, error) {
	var out []types.Mount
	for _, v := range sc.Volumes {
		m := types.Mount{Path: v.Target, ReadOnly: v.ReadOnly}
		switch v.Type {
		case ctypes.VolumeTypeVolume:
			m.Type = types.MountVolume
			if v.Source != "" {
				pv, ok := proj.Volumes[v.Source]
				if !ok {
					return nil, fmt.Errorf("volume %s: not declared in the top-level volumes: %w", v.Source, errdefs.ErrInvalidArgument)
				}
				m.Volume = pv.Name
			}
		case ctypes.VolumeTypeBind:
			m.Type, m.Source = types.MountBind, v.Source
		case ctypes.VolumeTypeTmpfs:
			m.Type = types.MountTmpfs
			if v.Tmpfs != nil && v.Tmpfs.Size > 0 {
				m.SizeMB = int((int64(v.Tmpfs.Size) + 1<<20 - 1) >> 20)
			}
		default:
			return nil, fmt.Errorf("volume %s: type %s is not supported: %w", v.Target, v.Type, errdefs.ErrInvalidArgument)
		}
		out = append(out, m)
	}
	return out, nil
}

func mapKeys[M ~map[string]V, V any](m M) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
