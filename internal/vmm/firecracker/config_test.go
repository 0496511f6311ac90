package firecracker

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/vmm"
)

func testSpec() vmm.Spec {
	return vmm.Spec{
		ID:        "m1",
		Dir:       "/var/lib/ferry/machines/m1",
		Kernel:    "/usr/local/lib/ferry/vmlinux",
		Initrd:    "/var/lib/ferry/machines/m1/initrd.cpio",
		Cmdline:   "quiet",
		VCPUs:     2,
		MemoryMiB: 256,
		Drives: []vmm.Drive{
			{ID: "base", Path: "/var/lib/ferry/rootfs/bases/abc.ext4", ReadOnly: true},
			{ID: "scratch", Path: "/var/lib/ferry/machines/m1/scratch.ext4"},
		},
		NICs:       []vmm.NIC{{ID: "eth0", Tap: "ft-0123456789ab", MAC: "02:fe:00:00:00:02"}},
		Control:    vmm.Control{Socket: "/var/lib/ferry/machines/m1/control.sock", VsockPort: 1024},
		ConsoleLog: "/var/lib/ferry/machines/m1/console.log",
	}
}

func TestConfigValidatesAgainstSwagger(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    *Driver
		spec func(*vmm.Spec)
	}{
		{"plain", New(), nil},
		{"no network no initrd", New(), func(s *vmm.Spec) { s.NICs = nil; s.Initrd = ""; s.VCPUs = 1 }},
		{"jailer", New(WithJailer(Jailer{UID: 1000, GID: 1000})), func(s *vmm.Spec) { s.NetNS = "ferry" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testSpec()
			if tc.spec != nil {
				tc.spec(&s)
			}
			c, err := tc.d.Config(s)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate(t, c.JSON()); err != nil {
				t.Fatalf("generated config fails the schema: %v\n%s", err, c.JSON())
			}
		})
	}
}

func TestSchemaRejectsBadConfigs(t *testing.T) {
	good := New().mustConfig(t, testSpec())
	for _, tc := range []struct {
		name   string
		mutate func(m map[string]any)
	}{
		{"unknown top-level key", func(m map[string]any) { m["boot_source"] = m["boot-source"] }},
		{"missing kernel", func(m map[string]any) { delete(m["boot-source"].(map[string]any), "kernel_image_path") }},
		{"vcpu count zero", func(m map[string]any) { m["machine-config"].(map[string]any)["vcpu_count"] = 0 }},
		{"memory as string", func(m map[string]any) { m["machine-config"].(map[string]any)["mem_size_mib"] = "256" }},
		{"drive without id", func(m map[string]any) { delete(m["drives"].([]any)[0].(map[string]any), "drive_id") }},
		{"guest cid below 3", func(m map[string]any) { m["vsock"].(map[string]any)["guest_cid"] = 2 }},
		{"unknown logger level", func(m map[string]any) { m["logger"].(map[string]any)["level"] = "Loud" }},
		{"typo in nic", func(m map[string]any) {
			n := m["network-interfaces"].([]any)[0].(map[string]any)
			n["host_dev"] = n["host_dev_name"]
			delete(n, "host_dev_name")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(good, &m); err != nil {
				t.Fatal(err)
			}
			tc.mutate(m)
			b, _ := json.Marshal(m)
			if err := validate(t, b); err == nil {
				t.Fatalf("schema accepted a bad config:\n%s", b)
			}
		})
	}
}

func (d *Driver) mustConfig(t *testing.T, s vmm.Spec) []byte {
	t.Helper()
	c, err := d.Config(s)
	if err != nil {
		t.Fatal(err)
	}
	return c.JSON()
}

func TestConfigContents(t *testing.T) {
	c, err := New().Config(testSpec())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.BootSource.BootArgs, "console=ttyS0 reboot=k panic=1 pci=off quiet"; got != want {
		t.Errorf("boot args %q, want %q", got, want)
	}
	if !c.Drives[0].IsReadOnly || c.Drives[1].IsReadOnly || c.Drives[0].IsRootDevice {
		t.Errorf("drives %+v", c.Drives)
	}
	if c.Vsock.UDSPath != testSpec().Control.Socket || c.Vsock.GuestCID != 3 {
		t.Errorf("vsock %+v", c.Vsock)
	}
	if c.NetworkInterfaces[0].HostDevName != "ft-0123456789ab" {
		t.Errorf("nic %+v", c.NetworkInterfaces[0])
	}
}

func TestOddVCPUsRejected(t *testing.T) {
	s := testSpec()
	s.VCPUs = 3
	if _, err := New().Config(s); err == nil {
		t.Fatal("3 vCPUs accepted")
	}
}

func TestPlanJailer(t *testing.T) {
	d := New(WithBinary("firecracker"), WithJailer(Jailer{Binary: "jailer", UID: 123, GID: 456, ChrootBase: "/srv/jailer"}))
	s := testSpec()
	s.NetNS = "ferrynet"
	p, err := d.Plan(s)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"jailer", "--id", "ferry-m1", "--exec-file", lookPath("firecracker"), "--uid", "123", "--gid", "456",
		"--chroot-base-dir", "/srv/jailer", "--netns", "/var/run/netns/ferrynet", "--", "--no-api", "--config-file", "/firecracker.json"}
	if !slices.Equal(p.Args, want) {
		t.Errorf("args\n got %q\nwant %q", p.Args, want)
	}
	root := "/srv/jailer/firecracker/ferry-m1/root"
	if p.Files[0].Path != root+"/firecracker.json" {
		t.Errorf("config at %s", p.Files[0].Path)
	}
	if strings.Contains(p.Files[0].Content, "/var/lib/ferry") {
		t.Errorf("jailed config names host paths:\n%s", p.Files[0].Content)
	}
	links := map[string]vmm.Link{}
	for _, l := range p.Links {
		links[l.Target] = l
	}
	if l := links[root+"/drives/scratch"]; l.Source != s.Drives[1].Path || l.Owner == nil || l.Owner.UID != 123 {
		t.Errorf("scratch link %+v", l)
	}
	if l := links[root+"/drives/base"]; l.Owner != nil {
		t.Errorf("shared base chowned: %+v", l)
	}
	if got := d.hostSocket(s); got != root+"/control.sock" {
		t.Errorf("host socket %s", got)
	}
}

func TestPlanNetNS(t *testing.T) {
	s := testSpec()
	s.NetNS = "ferrynet"
	p, err := New().Plan(s)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"nsenter", "--net=/var/run/netns/ferrynet", "--", "firecracker", "--id", "ferry-m1", "--no-api", "--config-file", s.Dir + "/firecracker.json"}
	if !slices.Equal(p.Args, want) {
		t.Errorf("args\n got %q\nwant %q", p.Args, want)
	}
	if p.Console == nil || !p.Console.Stdout || p.Console.Path != s.ConsoleLog {
		t.Errorf("console should be firecracker's stdout, through the console writer: %+v", p.Console)
	}
}
