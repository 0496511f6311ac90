package guest

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func validConfig() *RunConfig {
	return &RunConfig{
		Version:  ConfigVersion,
		Image:    Image{Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{"echo hi"}, Env: []string{"PATH=/bin"}},
		Hostname: "web-1",
		Hosts:    []HostEntry{{IP: "10.0.0.1", Names: []string{"gw"}}},
		DNS:      &DNS{Nameservers: []string{"10.0.0.1", "fd00::1"}, Search: []string{"internal"}, Options: []string{"ndots:1"}},
		Network: []Interface{{Name: "eth0", MAC: "02:00:00:00:00:01", Addresses: []string{"10.0.0.2/24", "fd00::2/64"},
			Gateway4: "10.0.0.1", Gateway6: "fd00::1", MTU: 1500}},
		Root:   Root{Mode: RootOverlay, Device: "/dev/vda", Scratch: "/dev/vdb"},
		Mounts: []Mount{{Source: "/dev/vdc", Target: "/data", FSType: "ext4"}},
		TTY:    true, Attach: true, AttachTimeoutMS: 30000,
		CgroupVersion: CgroupHybrid,
	}
}

func TestConfigRoundTrip(t *testing.T) {
	c := validConfig()
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, c)
	}
}

func TestConfigInvalid(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		mut        func(*RunConfig)
	}{
		{"version", "version 2", func(c *RunConfig) { c.Version = 2 }},
		{"no command", "no command", func(c *RunConfig) { c.Image.Entrypoint, c.Image.Cmd = nil, nil }},
		{"env", "not KEY=value", func(c *RunConfig) { c.Override.Env = []string{"NOEQUALS"} }},
		{"workdir", "not absolute", func(c *RunConfig) { c.Override.WorkingDir = "rel" }},
		{"hostname", "hostname", func(c *RunConfig) { c.Hostname = "bad host" }},
		{"nameserver", "nameserver", func(c *RunConfig) { c.DNS.Nameservers = []string{"x"} }},
		{"cidr", "not a CIDR", func(c *RunConfig) { c.Network[0].Addresses = []string{"10.0.0.2"} }},
		{"gw4", "gateway4", func(c *RunConfig) { c.Network[0].Gateway4 = "fd00::1" }},
		{"mtu", "mtu", func(c *RunConfig) { c.Network[0].MTU = 10 }},
		{"mac", "mac", func(c *RunConfig) { c.Network[0].MAC = "zz" }},
		{"mode", "root mode", func(c *RunConfig) { c.Root.Mode = "weird" }},
		{"device", "root device", func(c *RunConfig) { c.Root.Device = "vda" }},
		{"scratch single", "scratch", func(c *RunConfig) { c.Root.Mode = RootSingle }},
		{"mount target", "absolute target", func(c *RunConfig) { c.Mounts[0].Target = "/" }},
		{"power", "power method", func(c *RunConfig) { c.Power.Method = "explode" }},
		{"cgroup version", "cgroup_version", func(c *RunConfig) { c.CgroupVersion = "v3" }},
		{"user", "user", func(c *RunConfig) { c.Override.User = "a:b:c" }},
		{"attach timeout", "negative", func(c *RunConfig) { c.Attach, c.AttachTimeoutMS = true, -1 }},
		{"attach timeout alone", "without attach", func(c *RunConfig) { c.Attach, c.AttachTimeoutMS = false, 5 }},
		{"exec+cmd", "excludes", func(c *RunConfig) { c.Override.Exec = []string{"x"}; c.Override.Cmd = &[]string{"y"} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.mut(c)
			err := c.Validate()
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig mentioning %q", err, tc.want)
			}
		})
	}
}

func TestParseConfigRejects(t *testing.T) {
	for name, in := range map[string]string{
		"empty":    "",
		"garbage":  "{",
		"unknown":  `{"version":1,"bogus":true}`,
		"trailing": `{"version":1} {}`,
		"array":    `[]`,
	} {
		if _, err := ParseConfig([]byte(in)); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: ParseConfig = %v, want ErrInvalidConfig", name, err)
		}
	}
}

func TestArgv(t *testing.T) {
	sl := func(s ...string) *[]string { return &s }
	img := Image{Entrypoint: []string{"/ep"}, Cmd: []string{"a", "b"}}
	for _, tc := range []struct {
		name string
		img  Image
		o    Override
		want []string
	}{
		{"image", img, Override{}, []string{"/ep", "a", "b"}},
		{"cmd override", img, Override{Cmd: sl("c")}, []string{"/ep", "c"}},
		{"entrypoint override drops cmd", img, Override{Entrypoint: sl("/x")}, []string{"/x"}},
		{"entrypoint and cmd", img, Override{Entrypoint: sl("/x"), Cmd: sl("y")}, []string{"/x", "y"}},
		{"empty entrypoint", img, Override{Entrypoint: sl(), Cmd: sl("/bin/true")}, []string{"/bin/true"}},
		{"exec", img, Override{Exec: []string{"/init", "z"}}, []string{"/init", "z"}},
		{"cmd only image", Image{Cmd: []string{"/bin/sh"}}, Override{}, []string{"/bin/sh"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := RunConfig{Image: tc.img, Override: tc.o}
			if got := c.Argv(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Argv() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestConsoleExitLine(t *testing.T) {
	s := ExitStatus{Code: 137, Signal: 9, OOMKilled: true}
	line := "[    1.234567] " + ConsoleExitLine(s) + "\r\n"
	got, ok := ParseConsoleExit(line)
	if !ok || got != s {
		t.Fatalf("ParseConsoleExit(%q) = %+v, %v", line, got, ok)
	}
	if _, ok := ParseConsoleExit("hello world"); ok {
		t.Fatal("parsed a line without the prefix")
	}
}

func FuzzParseConfig(f *testing.F) {
	b, _ := validConfig().Marshal()
	f.Add(b)
	f.Add([]byte(`{"version":1,"image":{"cmd":["x"]},"root":{"mode":"single","device":"/dev/vda"}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		// Whatever parses must re-encode and parse to the same thing.
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("valid config does not marshal: %v", err)
		}
		c2, err := ParseConfig(out)
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("re-parse differs: %v", err)
		}
	})
}
