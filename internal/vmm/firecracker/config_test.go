package firecracker

import (
	"encoding/json"
	"os"
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
		{"jailer", New(WithJailer(Jailer{})), func(s *vmm.Spec) { s.NetNS = "ferry" }},
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

// TestPlanJailer: the whole jailed start as data. jailer gets the uid the
// sandbox allocates at start ({uid}, {gid}), the machine's netns and a
// config that names only jail paths (validated against the schema); the
// kernel, initrd and drives are hard-linked in, the per-machine ones (and
// the config and log) given to the VMM's uid, the shared ones left as they
// are; the TAP is handed over for its owner to be set; the cgroup is sized
// to the machine; the console is Firecracker's stdout through the writer.
func TestPlanJailer(t *testing.T) {
	uids := vmm.UIDRange{Base: 100000, Count: 8, LockDir: "/run/test"}
	d := New(WithBinary("firecracker"), WithJailer(Jailer{Binary: "jailer", ChrootBase: "/var/lib/ferry/jail", UIDs: uids, CgroupParent: "ferry"}))
	s := testSpec()
	s.NetNS = "ferrynet"
	tap, _ := os.Open(os.DevNull)
	defer tap.Close()
	s.NICs[0].File = tap
	p, err := d.Plan(s)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"jailer", "--id", "ferry-m1", "--exec-file", lookPath("firecracker"), "--uid", vmm.UIDArg, "--gid", vmm.GIDArg,
		"--chroot-base-dir", "/var/lib/ferry/jail", "--netns", "/var/run/netns/ferrynet", "--", "--no-api", "--config-file", "/firecracker.json"}
	if !slices.Equal(p.Args, want) {
		t.Errorf("args\n got %q\nwant %q", p.Args, want)
	}
	root := "/var/lib/ferry/jail/firecracker/ferry-m1/root"
	if p.Files[0].Path != root+"/firecracker.json" || p.Files[1].Path != root+"/firecracker.log" {
		t.Errorf("files %+v", p.Files)
	}
	cfg := p.Files[0].Content
	if strings.Contains(cfg, "/var/lib/ferry") {
		t.Errorf("jailed config names host paths:\n%s", cfg)
	}
	if err := validate(t, []byte(cfg)); err != nil {
		t.Errorf("jailed config fails the schema: %v\n%s", err, cfg)
	}
	links := map[string]string{}
	for _, l := range p.Links {
		links[l.Target] = l.Source
		if l.Owner != nil {
			t.Errorf("link %s chowned at plan time (the uid is only known at start)", l.Target)
		}
	}
	for target, source := range map[string]string{
		root + "/vmlinux": s.Kernel, root + "/initrd": s.Initrd,
		root + "/drives/base": s.Drives[0].Path, root + "/drives/scratch": s.Drives[1].Path,
	} {
		if links[target] != source {
			t.Errorf("link %s → %q, want %s", target, links[target], source)
		}
	}
	sb := p.Sandbox
	if sb == nil || !sb.DropsItself || sb.UIDs != uids {
		t.Fatalf("sandbox %+v", sb)
	}
	wantChown := []string{root + "/firecracker.json", root + "/firecracker.log", root + "/initrd", root + "/drives/scratch"}
	if !slices.Equal(sb.Chown, wantChown) {
		t.Errorf("chown %q, want %q (never the shared kernel or base)", sb.Chown, wantChown)
	}
	if cg := sb.Cgroup; cg == nil || cg.Path != "ferry/ferry-m1" || cg.MemoryMax != int64(256+memOverheadMiB)<<20 || cg.CPUs != 3 {
		t.Errorf("cgroup %+v", sb.Cgroup)
	}
	if len(p.Extra) != 1 || !p.Extra[0].Tap || p.Extra[0].File != tap {
		t.Errorf("extra %+v, want the TAP for its owner to be set", p.Extra)
	}
	if p.Console == nil || !p.Console.Stdout {
		t.Errorf("console %+v", p.Console)
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
