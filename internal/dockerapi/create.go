package dockerapi

import (
	"fmt"
	"math"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"

	"github.com/ferryvm/ferry/internal/api/types"
)

// refusals are the Docker options a micro-VM cannot honour, each with what
// ferry does instead. A request setting one is answered 400, never run with
// the option dropped.
var refusals = []struct {
	set func(h *container.HostConfig) bool
	msg string
}{
	{func(h *container.HostConfig) bool { return h.Privileged },
		"--privileged: each container is a micro-VM; its root already owns the guest kernel, and host devices and namespaces are never passed in"},
	{func(h *container.HostConfig) bool { return len(h.CapAdd) > 0 || len(h.CapDrop) > 0 },
		"--cap-add/--cap-drop: the entrypoint runs with the guest root's capabilities inside its own VM, which is the isolation boundary; ferry neither adds nor drops capabilities"},
	{func(h *container.HostConfig) bool {
		return len(h.Devices) > 0 || len(h.DeviceRequests) > 0 || len(h.DeviceCgroupRules) > 0
	}, "--device/--gpus: host devices are not passed into micro-VMs"},
	{func(h *container.HostConfig) bool { return h.PidMode.IsHost() || h.PidMode.IsContainer() },
		"--pid host|container: every micro-VM has its own kernel and so its own PID namespace; use docker exec to run processes beside the entrypoint"},
	{func(h *container.HostConfig) bool { return h.IpcMode.IsHost() || h.IpcMode.IsContainer() },
		"--ipc host|container: shared memory does not cross VM boundaries"},
	{func(h *container.HostConfig) bool { return h.UTSMode.IsHost() },
		"--uts host: each micro-VM has its own host name (--hostname)"},
	{func(h *container.HostConfig) bool { return h.UsernsMode.IsHost() },
		"--userns host: each micro-VM has its own kernel and user namespace"},
	{func(h *container.HostConfig) bool { return h.CgroupnsMode.IsHost() },
		"--cgroupns host: each micro-VM has its own kernel and cgroup tree"},
	{func(h *container.HostConfig) bool { return h.NetworkMode.IsHost() },
		"--network host: a micro-VM has its own kernel and network stack; publish ports with -p instead"},
	{func(h *container.HostConfig) bool { return h.NetworkMode.IsContainer() },
		"--network container:NAME: micro-VMs cannot share a network stack; put both on one network and use its DNS names"},
	{func(h *container.HostConfig) bool { return len(h.SecurityOpt) > 0 },
		"--security-opt: seccomp, AppArmor and SELinux profiles are not applied in the guest; the VM is the isolation boundary"},
	{func(h *container.HostConfig) bool { return len(h.VolumesFrom) > 0 },
		"--volumes-from: use named volumes instead (-v NAME:/path on both)"},
	{func(h *container.HostConfig) bool { return h.VolumeDriver != "" && h.VolumeDriver != "local" },
		"--volume-driver: ferry's volumes are its own block volumes (driver local)"},
	{func(h *container.HostConfig) bool { return len(h.Sysctls) > 0 },
		"--sysctl: not applied in the guest yet"},
	{func(h *container.HostConfig) bool { return h.ReadonlyRootfs },
		"--read-only: the guest root is always a writable overlay over the read-only image"},
	{func(h *container.HostConfig) bool { return len(h.Ulimits) > 0 },
		"--ulimit: not applied in the guest yet"},
	{func(h *container.HostConfig) bool {
		return h.Runtime != "" && h.Runtime != "ferry" && h.Runtime != "runc"
	}, "--runtime: ferry runs every container as a micro-VM"},
	{func(h *container.HostConfig) bool {
		return h.LogConfig.Type != "" && h.LogConfig.Type != "json-file" && h.LogConfig.Type != "local"
	},
		"--log-driver: ferry keeps each machine's console log (docker logs reads it)"},
}

// machineRequest turns a Docker create request into a machine create
// request, or says which option cannot be honoured.
func machineRequest(name string, req container.CreateRequest) (types.CreateRequest, error) {
	c := req.Config
	if c == nil || c.Image == "" {
		return types.CreateRequest{}, invalid("config: image is required")
	}
	h := req.HostConfig
	if h == nil {
		h = &container.HostConfig{}
	}
	for _, r := range refusals {
		if r.set(h) {
			return types.CreateRequest{}, invalid("%s", r.msg)
		}
	}
	switch {
	case c.StopSignal != "" && strings.TrimPrefix(strings.ToUpper(c.StopSignal), "SIG") != "TERM" && c.StopSignal != "15":
		return types.CreateRequest{}, invalid("--stop-signal %s: ferry stops machines with SIGTERM (docker stop --signal and docker kill --signal send others)", c.StopSignal)
	case c.StopTimeout != nil:
		return types.CreateRequest{}, invalid("--stop-timeout: not kept per container by ferry; pass docker stop -t (the default is 10 s)")
	case c.NetworkDisabled:
		return types.CreateRequest{}, invalid("network disabled: every micro-VM gets a NIC on a network; use an internal network to cut it off instead")
	case c.Domainname != "":
		return types.CreateRequest{}, invalid("--domainname: not set in the guest; put the domain in the network's DNS search instead")
	}
	cfg := types.Config{Image: c.Image, Hostname: c.Hostname, AutoDestroy: h.AutoRemove}
	var err error
	if cfg.Healthcheck, err = healthcheck(c.Healthcheck); err != nil {
		return types.CreateRequest{}, err
	}
	cfg.Init = types.Init{Cmd: c.Cmd, User: c.User, WorkingDir: c.WorkingDir, TTY: c.Tty,
		Attach: c.OpenStdin && c.AttachStdin}
	if c.Entrypoint != nil {
		cfg.Init.Entrypoint = c.Entrypoint
		if len(c.Entrypoint) == 1 && c.Entrypoint[0] == "" { // --entrypoint "": the image's is dropped
			cfg.Init.Entrypoint, cfg.Init.Exec = nil, c.Cmd
			cfg.Init.Cmd = nil
		} else if cfg.Init.Cmd == nil {
			cfg.Init.Cmd = []string{}
		}
	}
	if len(c.Env) > 0 {
		cfg.Env = map[string]string{}
		for _, kv := range c.Env {
			if k, v, ok := strings.Cut(kv, "="); ok {
				cfg.Env[k] = v
			}
		}
	}
	if len(c.Labels) > 0 {
		cfg.Metadata = map[string]string{}
		for k, v := range c.Labels {
			cfg.Metadata[k] = v
		}
	}
	if cfg.Guest, err = guestSize(h.Resources); err != nil {
		return types.CreateRequest{}, err
	}
	if cfg.Restart, err = restartPolicy(h.RestartPolicy); err != nil {
		return types.CreateRequest{}, err
	}
	if cfg.Services, err = services(c.ExposedPorts, h.PortBindings, h.PublishAllPorts); err != nil {
		return types.CreateRequest{}, err
	}
	if cfg.Mounts, err = mounts(c, h); err != nil {
		return types.CreateRequest{}, err
	}
	for _, d := range h.DNS {
		cfg.DNS = append(cfg.DNS, d.String())
	}
	cfg.ExtraHosts = h.ExtraHosts
	if cfg.Networks, err = networks(h.NetworkMode, req.NetworkingConfig, strings.TrimPrefix(name, "/")); err != nil {
		return types.CreateRequest{}, err
	}
	return types.CreateRequest{Name: strings.TrimPrefix(name, "/"), Config: cfg, SkipLaunch: true}, nil
}

// guestSize sizes the VM from --memory and --cpus (rounded up: a VM has
// whole CPUs and MiB).
func guestSize(r container.Resources) (types.Guest, error) {
	var g types.Guest
	if r.Memory < 0 {
		return g, invalid("--memory %d: must be positive", r.Memory)
	}
	if r.Memory > 0 {
		g.MemoryMB = int((r.Memory + 1<<20 - 1) >> 20)
	}
	cpus := float64(r.NanoCPUs) / 1e9
	if r.CPUQuota > 0 && r.CPUPeriod > 0 {
		cpus = float64(r.CPUQuota) / float64(r.CPUPeriod)
	}
	if r.CPUCount > 0 {
		cpus = float64(r.CPUCount)
	}
	g.CPUs = int(math.Ceil(cpus))
	return g, nil
}

func restartPolicy(p container.RestartPolicy) (types.Restart, error) {
	switch p.Name {
	case "", container.RestartPolicyDisabled:
		return types.Restart{Policy: types.RestartNo}, nil
	case container.RestartPolicyAlways, container.RestartPolicyUnlessStopped:
		return types.Restart{Policy: types.RestartAlways}, nil
	case container.RestartPolicyOnFailure:
		return types.Restart{Policy: types.RestartOnFailure, MaxRetries: p.MaximumRetryCount}, nil
	}
	return types.Restart{}, invalid("invalid restart policy: unknown policy '%s'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'", p.Name)
}

// services are the published ports: each binding of PortBindings, and with
// PublishAllPorts a random host port for every exposed port without one.
func services(exposed network.PortSet, bindings network.PortMap, all bool) ([]types.Service, error) {
	var out []types.Service
	add := func(p network.Port, bs []network.PortBinding) error {
		proto := string(p.Proto())
		if proto != "tcp" && proto != "udp" {
			return invalid("port %s: only tcp and udp are published", p)
		}
		s := types.Service{Protocol: proto, InternalPort: int(p.Num())}
		for _, b := range bs {
			hp := 0
			if b.HostPort != "" {
				lo, _, _ := strings.Cut(b.HostPort, "-") // a range publishes its first port
				n, err := strconv.Atoi(lo)
				if err != nil || n < 0 || n > 65535 {
					return invalid("port %s: host port %q is not a port number", p, b.HostPort)
				}
				hp = n
			}
			port := types.Port{Port: hp}
			if b.HostIP.IsValid() && !b.HostIP.IsUnspecified() {
				port.HostIP = b.HostIP.String()
			}
			s.Ports = append(s.Ports, port)
		}
		if len(s.Ports) == 0 {
			s.Ports = []types.Port{{}}
		}
		out = append(out, s)
		return nil
	}
	for p, bs := range bindings {
		if err := add(p, bs); err != nil {
			return nil, err
		}
	}
	if all {
		for p := range exposed {
			if _, ok := bindings[p]; !ok {
				if err := add(p, nil); err != nil {
					return nil, err
				}
			}
		}
	}
	sortServices(out)
	return out, nil
}

// mounts are the container's binds (-v SRC:DST[:ro]), --mount entries,
// --tmpfs and anonymous volumes (-v /path: Config.Volumes) as machine
// mounts: a SRC that is an absolute path is a bind mount (virtio-fs), any
// other a named volume created on first use.
func mounts(c *container.Config, h *container.HostConfig) ([]types.Mount, error) {
	var out []types.Mount
	seen := map[string]bool{}
	add := func(m types.Mount) {
		m.Path = path.Clean(m.Path)
		seen[m.Path] = true
		out = append(out, m)
	}
	for _, b := range h.Binds {
		m, err := bind(b)
		if err != nil {
			return nil, err
		}
		if err := notSocket(m); err != nil {
			return nil, err
		}
		add(m)
	}
	for _, m := range h.Mounts {
		if !path.IsAbs(m.Target) {
			return nil, invalid("--mount target %q: must be an absolute path", m.Target)
		}
		switch m.Type {
		case mount.TypeBind:
			if m.BindOptions != nil && m.BindOptions.Propagation != "" && m.BindOptions.Propagation != mount.PropagationRPrivate && m.BindOptions.Propagation != mount.PropagationPrivate {
				return nil, invalid("--mount bind-propagation=%s: mounts do not propagate between the host and a micro-VM", m.BindOptions.Propagation)
			}
			bm := types.Mount{Type: types.MountBind, Source: m.Source, Path: m.Target, ReadOnly: m.ReadOnly}
			if err := notSocket(bm); err != nil {
				return nil, err
			}
			add(bm)
		case mount.TypeVolume:
			if o := m.VolumeOptions; o != nil && (o.DriverConfig != nil && o.DriverConfig.Name != "" && o.DriverConfig.Name != "local" || o.Subpath != "") {
				return nil, invalid("--mount type=volume,target=%s: volume drivers and subpaths are not served; ferry's volumes are its own block volumes", m.Target)
			}
			add(types.Mount{Type: types.MountVolume, Volume: m.Source, Path: m.Target, ReadOnly: m.ReadOnly})
		case mount.TypeTmpfs:
			tm := types.Mount{Type: types.MountTmpfs, Path: m.Target}
			if m.TmpfsOptions != nil && m.TmpfsOptions.SizeBytes > 0 {
				tm.SizeMB = int((m.TmpfsOptions.SizeBytes + 1<<20 - 1) >> 20)
			}
			add(tm)
		default:
			return nil, invalid("--mount type=%s,target=%s: ferry mounts binds, volumes and tmpfs", m.Type, m.Target)
		}
	}
	for _, p := range sortedKeys(h.Tmpfs) {
		m, err := tmpfs(p, h.Tmpfs[p])
		if err != nil {
			return nil, err
		}
		add(m)
	}
	if c != nil {
		ps := make([]string, 0, len(c.Volumes))
		for p := range c.Volumes {
			ps = append(ps, p)
		}
		sortStrings(ps)
		for _, p := range ps {
			if !seen[path.Clean(p)] {
				add(types.Mount{Type: types.MountVolume, Path: p})
			}
		}
	}
	return out, nil
}

// bind reads -v SRC:DST[:OPTS].
func bind(spec string) (types.Mount, error) {
	parts := strings.Split(spec, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return types.Mount{}, invalid("invalid volume specification: '%s'", spec)
	}
	m := types.Mount{Path: parts[1]}
	if path.IsAbs(parts[0]) {
		m.Type, m.Source = types.MountBind, parts[0]
	} else {
		m.Type, m.Volume = types.MountVolume, parts[0]
	}
	if !path.IsAbs(m.Path) {
		return m, invalid("invalid volume specification: '%s': the destination must be an absolute path", spec)
	}
	if len(parts) == 3 {
		for _, o := range strings.Split(parts[2], ",") {
			switch o {
			case "ro":
				m.ReadOnly = true
			case "rw", "z", "Z", "nocopy", "rprivate", "private", "":
				// z/Z relabel for SELinux, which no guest applies; a volume starts empty.
			default:
				return m, invalid("-v %s: option %q: mounts do not propagate between the host and a micro-VM", spec, o)
			}
		}
	}
	return m, nil
}

// tmpfs reads --tmpfs PATH:size=64m,... (other options are Linux's defaults).
func tmpfs(p, opts string) (types.Mount, error) {
	m := types.Mount{Type: types.MountTmpfs, Path: path.Clean(p)}
	for _, o := range strings.Split(opts, ",") {
		k, v, _ := strings.Cut(o, "=")
		if k != "size" {
			continue
		}
		n, err := parseBytes(v)
		if err != nil {
			return m, invalid("--tmpfs %s: size %q: %v", p, v, err)
		}
		m.SizeMB = int((n + 1<<20 - 1) >> 20)
	}
	return m, nil
}

func parseBytes(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult = 1 << 10
	case strings.HasSuffix(s, "m"), strings.HasSuffix(s, "M"):
		mult = 1 << 20
	case strings.HasSuffix(s, "g"), strings.HasSuffix(s, "G"):
		mult = 1 << 30
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("want a size like 64m")
	}
	return n * mult, nil
}

// networks are the machine's networks: the network mode's, then any others
// of NetworkingConfig, with their aliases and addresses.
//
// The container's name is its DNS name on every network already: an alias
// repeating it (compose sends one) is dropped, as are duplicates.
func networks(mode container.NetworkMode, nc *network.NetworkingConfig, name string) ([]types.EndpointRequest, error) {
	if mode.IsNone() {
		return nil, invalid("--network none: every micro-VM gets a NIC on a network; use an internal network to cut it off instead")
	}
	var out []types.EndpointRequest
	primary := ""
	if mode.IsUserDefined() {
		primary = string(mode)
	}
	ep := func(net string, s *network.EndpointSettings) types.EndpointRequest {
		r := types.EndpointRequest{Network: net}
		if s != nil {
			for _, a := range s.Aliases {
				if a != name && !slices.Contains(r.Aliases, a) {
					r.Aliases = append(r.Aliases, a)
				}
			}
			if s.IPAMConfig != nil {
				r.IPv4, r.IPv6 = s.IPAMConfig.IPv4Address, s.IPAMConfig.IPv6Address
			}
		}
		return r
	}
	var eps map[string]*network.EndpointSettings
	if nc != nil {
		eps = nc.EndpointsConfig
	}
	if primary != "" {
		out = append(out, ep(primary, eps[primary]))
	}
	names := make([]string, 0, len(eps))
	for n := range eps {
		if n != primary && n != "bridge" && n != "default" {
			names = append(names, n)
		}
	}
	sortStrings(names)
	for _, n := range names {
		out = append(out, ep(n, eps[n]))
	}
	return out, nil
}

// notSocket refuses a bind mount of a unix socket (the engine's own, as
// testcontainers' Ryuk reaper mounts it): a micro-VM's files are shared
// over virtio-fs, where a socket is an inode no guest can connect
// through, and ferry forwards no sockets into guests.
func notSocket(m types.Mount) error {
	if m.Type != types.MountBind {
		return nil
	}
	if fi, err := os.Stat(m.Source); err == nil && fi.Mode()&os.ModeSocket != 0 {
		return invalid("bind mount of the unix socket %s: a micro-VM cannot connect to a host socket through a mount; for testcontainers, whose Ryuk reaper mounts the engine's socket, set TESTCONTAINERS_RYUK_DISABLED=true", m.Source)
	}
	return nil
}
