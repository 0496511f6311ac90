package cli

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/machine"
)

func TestParsePublish(t *testing.T) {
	for in, want := range map[string]types.Service{
		"8080:80":           {Protocol: "tcp", InternalPort: 80, Ports: []types.Port{{Port: 8080}}},
		"80":                {Protocol: "tcp", InternalPort: 80, Ports: []types.Port{{}}},
		"5353:53/udp":       {Protocol: "udp", InternalPort: 53, Ports: []types.Port{{Port: 5353}}},
		"127.0.0.1:8080:80": {Protocol: "tcp", InternalPort: 80, Ports: []types.Port{{Port: 8080, HostIP: "127.0.0.1"}}},
		"[::1]:8080:80":     {Protocol: "tcp", InternalPort: 80, Ports: []types.Port{{Port: 8080, HostIP: "::1"}}},
	} {
		got, err := parsePublish(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parsePublish(%q) = %+v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "a:b", "1:2:3:4", "80:x"} {
		if _, err := parsePublish(in); err == nil {
			t.Errorf("parsePublish(%q) accepted", in)
		}
	}
}

func TestParseMemory(t *testing.T) {
	for in, want := range map[string]int{"512m": 512, "1g": 1024, "1.5G": 1536, "256": 256, "524288k": 512, "268435456b": 256, "64MiB": 64} {
		if got, err := parseMemoryMB(in); err != nil || got != want {
			t.Errorf("parseMemoryMB(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-5", "lots", "0"} {
		if _, err := parseMemoryMB(in); err == nil {
			t.Errorf("parseMemoryMB(%q) accepted", in)
		}
	}
}

func TestRunCreateRequest(t *testing.T) {
	envFile := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(envFile, []byte("# comment\nA=1\nB=from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PASSED", "through")
	f := runFlags{envFile: envFile, env: []string{"B=flag", "PASSED", "UNSET_VAR_X"}, entrypoint: "/bin/echo",
		cpus: 1.5, memory: "1g", publish: []string{"8080:80"}, restart: "on-failure:2", user: "1000", workdir: "/tmp",
		hostname: "h", name: "n", cgroupVersion: "hybrid"}
	req, err := f.createRequest([]string{"busybox", "a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	c := req.Config
	if req.Name != "n" || c.Image != "busybox" || !reflect.DeepEqual(c.Init.Entrypoint, []string{"/bin/echo"}) ||
		!reflect.DeepEqual(c.Init.Cmd, []string{"a", "b"}) || c.Guest.CPUs != 2 || c.Guest.MemoryMB != 1024 ||
		c.Restart.MaxRetries != 2 || c.Init.User != "1000" || c.Init.WorkingDir != "/tmp" || c.Hostname != "h" || c.Init.CgroupVersion != "hybrid" ||
		!reflect.DeepEqual(c.Env, map[string]string{"A": "1", "B": "flag", "PASSED": "through"}) || len(c.Services) != 1 {
		t.Fatalf("request = %+v", req)
	}
	if err := machine.ValidateConfig(&c); err != nil {
		t.Fatal(err)
	}
	f = runFlags{cgroupVersion: "v3"}
	if req, err := f.createRequest([]string{"busybox"}); err == nil && machine.ValidateConfig(&req.Config) == nil {
		t.Fatal("--cgroup-version v3 accepted")
	}
	f = runFlags{rm: true, restart: "always"}
	if _, err := f.createRequest([]string{"busybox"}); err == nil {
		t.Fatal("--rm with --restart always accepted")
	}
	f = runFlags{rm: true, detach: true}
	if req, _ := f.createRequest([]string{"busybox"}); !req.Config.AutoDestroy {
		t.Fatal("-d --rm does not set auto_destroy")
	}
}
