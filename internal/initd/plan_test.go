package initd

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/guest"
)

func TestStepsOrder(t *testing.T) {
	var names []string
	for _, s := range Steps {
		names = append(names, s.Name)
	}
	got := strings.Join(names, " ")
	want := "mount-early modules control config root switch-root mount-late hostname etc-files network volumes rlimits cgroup user workdir command spawn"
	if got != want {
		t.Fatalf("steps:\n got %s\nwant %s", got, want)
	}
}

func mountTable(ms []Mount) string {
	var b strings.Builder
	for _, m := range ms {
		b.WriteString(m.String() + "\n")
	}
	return b.String()
}

func TestRootMounts(t *testing.T) {
	r := guest.Root{Mode: guest.RootOverlay, Device: "/dev/vda", Scratch: "/dev/vdb"}
	got := mountTable(RootMounts(r, ScratchExt4))
	want := `/dev/vda on /ferry/base type ext4 (ro)
/dev/vdb on /ferry/scratch type ext4 (relatime,noinit_itable)
overlay on /ferry/root type overlay (lowerdir=/ferry/base,upperdir=/ferry/scratch/upper,workdir=/ferry/scratch/work)
`
	if got != want {
		t.Errorf("overlay:\n%s\nwant\n%s", got, want)
	}
	if got := mountTable(RootMounts(r, ScratchBlank)); !strings.Contains(got, "tmpfs on /ferry/scratch type tmpfs") {
		t.Errorf("blank scratch: %s", got)
	}
	single := guest.Root{Mode: guest.RootSingle, Device: "/dev/vda", FSType: "xfs"}
	if got := mountTable(RootMounts(single, ScratchNone)); got != "/dev/vda on /ferry/root type xfs (relatime)\n" {
		t.Errorf("single: %s", got)
	}
}

func TestLateAndVolumeMounts(t *testing.T) {
	cfg := &guest.RunConfig{Mounts: []guest.Mount{
		{Source: "tmpfs", Target: "/cache/", Options: []string{"size=64m"}},
		{Source: "/dev/vdc", Target: "/data", ReadOnly: true},
	}}
	got := mountTable(VolumeMounts(cfg))
	want := "tmpfs on /cache type tmpfs (size=64m)\n/dev/vdc on /data type ext4 (ro)\n"
	if got != want {
		t.Errorf("volumes:\n%s\nwant\n%s", got, want)
	}
	late := mountTable(LateMounts(CgroupMounts(cfg.CgroupVersion, nil)))
	for _, want := range []string{"devpts on /dev/pts", "shm on /dev/shm", "tmpfs on /run", "tmpfs on /tmp", "cgroup2 on /sys/fs/cgroup"} {
		if !strings.Contains(late, want) {
			t.Errorf("late mounts lack %q:\n%s", want, late)
		}
	}
}

type fakeMounter struct {
	calls []string
	fail  string
}

func (f *fakeMounter) Mount(m Mount) error {
	f.calls = append(f.calls, m.Target)
	if m.Target == f.fail {
		return errors.New("boom")
	}
	return nil
}

func TestMountAllOptional(t *testing.T) {
	ms := LateMounts(CgroupMounts("", nil))
	f := &fakeMounter{fail: "/sys/fs/cgroup"} // optional
	if err := mountAll(f, NewLogger(timeZero), ms); err != nil {
		t.Fatalf("optional failure was fatal: %v", err)
	}
	f = &fakeMounter{fail: "/dev/pts"}
	if err := mountAll(f, NewLogger(timeZero), ms); err == nil || len(f.calls) != 1 {
		t.Fatalf("required failure: err %v after %v", err, f.calls)
	}
}

func TestProbeScratch(t *testing.T) {
	blank := make([]byte, 8192)
	if s, err := ProbeScratch(bytes.NewReader(blank)); s != ScratchBlank || err != nil {
		t.Errorf("blank: %v %v", s, err)
	}
	ext := make([]byte, 8192)
	ext[extMagicOffset], ext[extMagicOffset+1] = 0x53, 0xEF
	if s, err := ProbeScratch(bytes.NewReader(ext)); s != ScratchExt4 || err != nil {
		t.Errorf("ext4: %v %v", s, err)
	}
	junk := bytes.Repeat([]byte{0xAA}, 8192)
	var f *guest.Failure
	if _, err := ProbeScratch(bytes.NewReader(junk)); !errors.As(err, &f) || f.Reason != guest.ReasonScratchCorrupt {
		t.Errorf("junk: %v", err)
	}
	if _, err := ProbeScratch(bytes.NewReader(make([]byte, 100))); err == nil {
		t.Error("short device accepted")
	}
}

func TestEtcFiles(t *testing.T) {
	cfg := &guest.RunConfig{Hostname: "web", Hosts: []guest.HostEntry{{IP: "10.0.0.1", Names: []string{"gw", "router"}}}}
	want := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.0.0.1\tgw router\n127.0.1.1\tweb\n"
	if got := string(HostsFile(cfg)); got != want {
		t.Errorf("hosts:\n%s\nwant\n%s", got, want)
	}
	cfg.Hosts = append(cfg.Hosts, guest.HostEntry{IP: "127.0.0.1", Names: []string{"localhost", "web"}})
	if got := string(HostsFile(cfg)); strings.Count(got, "localhost") != 1 || strings.Contains(got, "127.0.1.1") {
		t.Errorf("hosts with localhost and hostname given:\n%s", got)
	}
	got := string(ResolvConf(&guest.DNS{Nameservers: []string{"1.1.1.1", "fd00::1"}, Search: []string{"a", "b"}, Options: []string{"ndots:2"}}))
	if got != "nameserver 1.1.1.1\nnameserver fd00::1\nsearch a b\noptions ndots:2\n" {
		t.Errorf("resolv.conf:\n%s", got)
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "bin"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "bin/tool"), []byte("#!/bin/sh\n"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "bin/data"), []byte("x"), 0o644))
	path := filepath.Join(dir, "nope") + ":" + filepath.Join(dir, "bin")
	if p, err := LookPath("tool", path, "/"); err != nil || p != filepath.Join(dir, "bin/tool") {
		t.Errorf("tool: %q %v", p, err)
	}
	if p, err := LookPath("./bin/tool", "", dir); err != nil || p != filepath.Join(dir, "bin/tool") {
		t.Errorf("relative: %q %v", p, err)
	}
	for argv0, reason := range map[string]string{
		"missing":                          guest.ReasonNotFound,
		"data":                             guest.ReasonNotExecutable,
		filepath.Join(dir, "bin"):          guest.ReasonNotExecutable,
		filepath.Join(dir, "bin/missing"):  guest.ReasonNotFound,
		filepath.Join(dir, "bin/data/sub"): guest.ReasonNotFound,
	} {
		_, err := LookPath(argv0, path, "/")
		var f *guest.Failure
		if !errors.As(err, &f) || f.Reason != reason {
			t.Errorf("%s: %v, want %s", argv0, err, reason)
		}
	}
}

func TestModuleOrder(t *testing.T) {
	got := ModuleOrder([]byte("# deps first\n/lib/modules/6.1/kernel/a.ko\n\nkernel/b.ko.xz\n"))
	want := []string{"/lib/modules/6.1/kernel/a.ko", "/lib/modules/kernel/b.ko.xz"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("got %q want %q", got, want)
	}
}

func TestModuleParams(t *testing.T) {
	cmdline := `console=ttyS0 virtio_mmio.device=512@0xfeb00e00:12 virtio-mmio.device=512@0xfeb00c00:11 ` +
		`virtio_blk.x="a b" virtio_mmio=bare foo.bar=1 a=virtio_mmio.device=no` + "\n"
	for p, want := range map[string]string{
		"/lib/modules/6.1/kernel/drivers/virtio/virtio_mmio.ko":     "device=512@0xfeb00e00:12 device=512@0xfeb00c00:11",
		"/lib/modules/6.1/kernel/drivers/block/virtio_blk.ko.xz":    `x="a b"`,
		"/lib/modules/6.1/kernel/drivers/net/virtio_net.ko":         "",
		"/lib/modules/6.1/kernel/drivers/virtio/virtio-mmio.ko.zst": "device=512@0xfeb00e00:12 device=512@0xfeb00c00:11",
	} {
		if got := ModuleParams(cmdline, p); got != want {
			t.Errorf("%s: %q, want %q", p, got, want)
		}
	}
}

func TestFailureCodes(t *testing.T) {
	for reason, code := range map[string]int{guest.ReasonNotFound: 127, guest.ReasonNotExecutable: 126, guest.ReasonUser: 125} {
		if got := failureCode(&guest.Failure{Reason: reason}); got != code {
			t.Errorf("%s: %d want %d", reason, got, code)
		}
	}
	f := asFailure(Step{Name: "root", Reason: guest.ReasonRootDevice}, errors.New("x"))
	if f.Step != "root" || f.Reason != guest.ReasonRootDevice {
		t.Errorf("plain error: %+v", f)
	}
	f = asFailure(Step{Name: "command", Reason: guest.ReasonNotFound}, &guest.Failure{Reason: guest.ReasonNotExecutable, Message: "m"})
	if f.Step != "command" || f.Reason != guest.ReasonNotExecutable {
		t.Errorf("failure: %+v", f)
	}
}
