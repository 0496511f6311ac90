package dockerapi

import (
	"net/netip"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/ferryvm/ferry/internal/api/types"
)

func TestInspectIsTheMachine(t *testing.T) {
	now := time.Now().UTC()
	m := &types.Machine{ID: "0123456789abcd", Name: "web", State: types.StateStopped, CreatedAt: now.Add(-time.Minute),
		StartedAt: now.Add(-30 * time.Second), ImageRef: types.ImageRef{Ref: "busybox:vm", Digest: "sha256:abc"},
		ImageConfig: types.ImageConfig{Entrypoint: []string{"/bin/sh"}, Cmd: []string{"-c", "x"}},
		Config: types.Config{Image: "busybox:vm", Metadata: map[string]string{"k": "v"},
			Init:     types.Init{Cmd: []string{"-c", "echo hi"}},
			Services: []types.Service{{Protocol: "tcp", InternalPort: 80, Ports: []types.Port{{Port: 8080}}}}},
		LastExit: &types.Exit{ExitCode: 0, Signal: 9, ExitedAt: now}}
	r := inspect(m)
	if r.ID != containerID(m.ID) || r.Name != "/web" || r.Image != "sha256:abc" || r.Config.Labels["k"] != "v" {
		t.Errorf("identity not carried: %+v", r)
	}
	if r.State.Status != container.StateExited || r.State.ExitCode != 137 || r.State.Running {
		t.Errorf("state = %+v, want exited 137 (killed by signal 9)", r.State)
	}
	if r.Path != "/bin/sh" || len(r.Args) != 2 || r.Args[1] != "echo hi" {
		t.Errorf("path %q args %q: want the image entrypoint with the config's cmd", r.Path, r.Args)
	}
	if b := r.HostConfig.PortBindings[portKey(80, "tcp")]; len(b) != 1 || b[0].HostPort != "8080" {
		t.Errorf("port bindings = %v", r.HostConfig.PortBindings)
	}
	// Started: the live port (host port chosen by the network) is shown.
	m.State = types.StateStarted
	m.Network = &types.Network{Ports: []types.PortMapping{{Protocol: "tcp", HostPort: 8080, GuestPort: 80}},
		Endpoints: []types.Endpoint{{Network: "default", IPv4: netip.MustParsePrefix("10.213.0.5/22"), MAC: "02:00:00:00:00:01"}}}
	r = inspect(m)
	ps := r.NetworkSettings.Ports[portKey(80, "tcp")]
	if len(ps) != 1 || ps[0].HostPort != "8080" || ps[0].HostIP != netip.IPv4Unspecified() {
		t.Errorf("live ports = %v", r.NetworkSettings.Ports)
	}
	if ep := r.NetworkSettings.Networks["bridge"]; ep == nil || ep.IPAddress.String() != "10.213.0.5" || ep.IPPrefixLen != 22 {
		t.Errorf("networks = %+v", r.NetworkSettings.Networks)
	}
	s := summary(m)
	if s.State != container.StateRunning || len(s.Ports) != 1 || s.Ports[0].PublicPort != 8080 || s.Names[0] != "/web" {
		t.Errorf("summary = %+v", s)
	}
}
