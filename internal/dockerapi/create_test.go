package dockerapi

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
)

func TestMachineRequestCarriesDockerOptions(t *testing.T) {
	p := network.MustParsePort("80/tcp")
	req := container.CreateRequest{
		Config: &container.Config{Image: "busybox", Cmd: []string{"httpd", "-f"}, Env: []string{"A=1", "B=x=y"},
			Labels: map[string]string{"com.example": "v"}, Tty: true, OpenStdin: true, AttachStdin: true,
			User: "1000", WorkingDir: "/tmp", Hostname: "h1", Volumes: map[string]struct{}{"/anon": {}}, ExposedPorts: network.PortSet{network.MustParsePort("53/udp"): {}}},
		HostConfig: &container.HostConfig{AutoRemove: true, PublishAllPorts: true,
			PortBindings:  network.PortMap{p: {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: "8080"}}},
			RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyOnFailure, MaximumRetryCount: 3},
			Resources:     container.Resources{Memory: 300 << 20, NanoCPUs: 1_500_000_000},
			Tmpfs:         map[string]string{"/run": "size=16m"}, ExtraHosts: []string{"db:10.0.0.2"},
			Binds: []string{"/srv/data:/data:ro", "vol1:/v"},
			DNS:   []netip.Addr{netip.MustParseAddr("1.1.1.1")}, NetworkMode: "appnet"},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			"appnet": {Aliases: []string{"web"}}, "other": {}}},
	}
	req.NetworkingConfig.EndpointsConfig["appnet"].Aliases = []string{"web-1", "web", "web"}
	got, err := machineRequest("/web-1", req)
	if err != nil {
		t.Fatal(err)
	}
	c := got.Config
	checks := []struct {
		name string
		ok   bool
	}{
		{"name", got.Name == "web-1"},
		{"skip launch (docker start starts it)", got.SkipLaunch},
		{"cmd", strings.Join(c.Init.Cmd, " ") == "httpd -f"},
		{"env", c.Env["A"] == "1" && c.Env["B"] == "x=y"},
		{"labels", c.Metadata["com.example"] == "v"},
		{"tty and attach", c.Init.TTY && c.Init.Attach},
		{"user, workdir, hostname", c.Init.User == "1000" && c.Init.WorkingDir == "/tmp" && c.Hostname == "h1"},
		{"auto remove", c.AutoDestroy},
		{"restart", c.Restart == types.Restart{Policy: types.RestartOnFailure, MaxRetries: 3}},
		{"memory", c.Guest.MemoryMB == 300},
		{"cpus rounded up", c.Guest.CPUs == 2},
		{"mounts", len(c.Mounts) == 4 && c.Mounts[0] == types.Mount{Type: types.MountBind, Source: "/srv/data", Path: "/data", ReadOnly: true} &&
			c.Mounts[1] == types.Mount{Type: types.MountVolume, Volume: "vol1", Path: "/v"} &&
			c.Mounts[2] == types.Mount{Type: types.MountTmpfs, Path: "/run", SizeMB: 16} &&
			c.Mounts[3] == types.Mount{Type: types.MountVolume, Path: "/anon"}},
		{"dns and hosts", len(c.DNS) == 1 && c.DNS[0] == "1.1.1.1" && c.ExtraHosts[0] == "db:10.0.0.2"},
		{"ports", len(c.Services) == 2 && c.Services[0].InternalPort == 53 && c.Services[0].Protocol == "udp" &&
			c.Services[1].InternalPort == 80 && c.Services[1].Ports[0] == types.Port{Port: 8080, HostIP: "127.0.0.1"}},
		{"networks", len(c.Networks) == 2 && c.Networks[0].Network == "appnet" && len(c.Networks[0].Aliases) == 1 && c.Networks[0].Aliases[0] == "web" && c.Networks[1].Network == "other"},
	}
	for _, ch := range checks {
		if !ch.ok {
			t.Errorf("%s not carried: %+v", ch.name, got)
		}
	}
}

func TestMachineRequestRefusesWhatAVMCannotHonour(t *testing.T) {
	cases := []struct {
		name string
		h    container.HostConfig
		want string
	}{
		{"privileged", container.HostConfig{Privileged: true}, "--privileged"},
		{"cap-add", container.HostConfig{CapAdd: []string{"NET_ADMIN"}}, "--cap-add"},
		{"device", container.HostConfig{Resources: container.Resources{Devices: []container.DeviceMapping{{PathOnHost: "/dev/kvm"}}}}, "--device"},
		{"pid host", container.HostConfig{PidMode: "host"}, "--pid host"},
		{"ipc host", container.HostConfig{IpcMode: "host"}, "--ipc host"},
		{"network host", container.HostConfig{NetworkMode: "host"}, "publish ports with -p"},
		{"network container", container.HostConfig{NetworkMode: "container:x"}, "container:NAME"},
		{"network none", container.HostConfig{NetworkMode: "none"}, "--network none"},
		{"userns host", container.HostConfig{UsernsMode: "host"}, "--userns host"},
		{"security-opt", container.HostConfig{SecurityOpt: []string{"seccomp=unconfined"}}, "--security-opt"},
		{"bind propagation", container.HostConfig{Binds: []string{"/etc:/x:rshared"}}, "do not propagate"},
		{"volume driver", container.HostConfig{VolumeDriver: "nfs"}, "--volume-driver"},
		{"log driver", container.HostConfig{LogConfig: container.LogConfig{Type: "syslog"}}, "--log-driver"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.h
			_, err := machineRequest("", container.CreateRequest{Config: &container.Config{Image: "busybox"}, HostConfig: &h})
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want an invalid argument naming %q", err, tc.want)
			}
		})
	}
	for name, c := range map[string]container.Config{
		"stop signal":  {Image: "busybox", StopSignal: "SIGQUIT"},
		"stop timeout": {Image: "busybox", StopTimeout: new(int)},
		"domainname":   {Image: "busybox", Domainname: "example.com"},
	} {
		if _, err := machineRequest("", container.CreateRequest{Config: &c}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: %v, want a refusal", name, err)
		}
	}
	// Docker's defaults (what the CLI and compose send) are accepted.
	def := container.HostConfig{NetworkMode: "bridge", IpcMode: "private", CgroupnsMode: "private", LogConfig: container.LogConfig{Type: "json-file"}}
	if _, err := machineRequest("", container.CreateRequest{Config: &container.Config{Image: "busybox"}, HostConfig: &def}); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
}

func TestContainerIDsResolveBothWays(t *testing.T) {
	id := "2e3e358158c6bc"
	long := containerID(id)
	if len(long) != 64 || !strings.HasPrefix(long, id) || !isHex(long) {
		t.Fatalf("containerID(%s) = %s", id, long)
	}
	for _, ref := range []string{long, long[:20], long[:12], "/" + long[:12], "web"} {
		want := ref
		if strings.Trim(ref, "/") != "web" {
			want = strings.TrimPrefix(ref, "/")
			if len(want) > len(id) {
				want = id
			}
		}
		if got := machineRef(ref); got != want {
			t.Errorf("machineRef(%s) = %s, want %s", ref, got, want)
		}
	}
}
