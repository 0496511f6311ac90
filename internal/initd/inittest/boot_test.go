package inittest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/guest"
)

func baseConfig(argv ...string) *guest.RunConfig {
	return &guest.RunConfig{
		Version: guest.ConfigVersion,
		Image:   guest.Image{Cmd: argv, Env: []string{"PATH=/bin", "FROM_IMAGE=1"}},
		Root:    guest.Root{Mode: guest.RootOverlay, Device: "/dev/vda", Scratch: "/dev/vdb"},
		Debug:   true,
	}
}

// TestBootEntrypoint: the entrypoint sees its user, env, workdir, hostname,
// resolv.conf, hosts and the console as its tty; an orphan is reaped; its
// writes land on the scratch disk, which is clean after power-off; exit 7
// comes back as 7 over the control channel and on the console.
func TestBootEntrypoint(t *testing.T) {
	t.Parallel()
	e := Setup(t)
	script := `#!/bin/sh
echo "user=$(id -u):$(id -g) groups=$(id -G) home=$HOME"
echo "pwd=$(pwd) host=$(hostname) env=$FROM_IMAGE$FROM_RUN"
echo "resolv=$(cat /etc/resolv.conf | tr '\n' ' ')"
echo "tty=$(tty) term=$TERM"
echo "hosts=$(grep gateway /etc/hosts)"
(sleep 0.2 &)
sleep 1
echo "zombies=$(ps -o stat | grep -c '^Z')"
echo "mounts=$(grep -c -E ' /(dev/pts|dev/shm|run|tmp|proc|sys) ' /proc/mounts)"
echo persisted > /home/app/written
echo done
exit 7
`
	base := e.Rootfs(t, map[string]string{"/entry.sh": script})
	scratch := Scratch(t, 64)
	cfg := baseConfig("/entry.sh")
	cfg.Override = guest.Override{User: "app", WorkingDir: "/work/dir", Env: []string{"FROM_RUN=2"}}
	cfg.Hostname = "vm-one"
	cfg.TTY = true // the console is the entrypoint's controlling terminal
	cfg.DNS = &guest.DNS{Nameservers: []string{"10.0.0.53"}, Search: []string{"internal"}}
	cfg.Hosts = []guest.HostEntry{{IP: "10.0.0.1", Names: []string{"gateway"}}}
	b := e.Start(t, cfg, Disks{Base: base, Scratch: scratch}, Options{})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := b.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := c.Wait(ctx)
	c.Close()
	res, qerr := b.Wait()
	if err != nil || qerr != nil {
		t.Fatalf("wait: %v, qemu: %v\nconsole:\n%s", err, qerr, res.Console)
	}
	if ex.Code != 7 || ex.Failure != nil {
		t.Errorf("exit = %+v, want code 7", ex)
	}
	if cex, ok := ConsoleExit(res.Console); !ok || cex.Code != 7 {
		t.Errorf("console exit line = %+v, %v", cex, ok)
	}
	for _, want := range []string{
		"user=1000:1000 groups=1000 2000 home=/home/app",
		"pwd=/work/dir host=vm-one env=12",
		"resolv=nameserver 10.0.0.53 search internal",
		"hosts=10.0.0.1\tgateway",
		"tty=/dev/ttyS0 term=xterm",
		"zombies=0",
		"mounts=6",
		"done",
	} {
		if !strings.Contains(res.Console, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	if out, err := Fsck(scratch); err != nil {
		t.Errorf("scratch not clean after power-off: %v\n%s", err, out)
	}
	if out, err := exec.Command("debugfs", "-R", "cat /upper/home/app/written", scratch).Output(); err != nil || !strings.Contains(string(out), "persisted") {
		t.Errorf("the entrypoint's write is not in the scratch's upper dir: %q %v", out, err)
	}
	if t.Failed() {
		t.Logf("console:\n%s", res.Console)
	}
}

// TestBootControl: exec with and without a tty, a reconnecting host, and a
// signal to the entrypoint reported as 128+n.
func TestBootControl(t *testing.T) {
	t.Parallel()
	e := Setup(t)
	base := e.Rootfs(t, nil)
	cfg := baseConfig("sleep", "1000")
	cfg.Root = guest.Root{Mode: guest.RootSingle, Device: "/dev/vda"}
	cfg.Network = []guest.Interface{{Name: "eth0", MAC: "02:fe:00:00:00:02", Addresses: []string{"10.0.2.15/24", "fd00:f::15/64"},
		Gateway4: "10.0.2.2", Gateway6: "fd00:f::2", MTU: 1400}}
	cfg.Mounts = []guest.Mount{{Source: "tmpfs", Target: "/cache", Options: []string{"size=8m"}}}
	cfg.Rlimits = &guest.Rlimits{NoFile: 4242}
	// A NIC on QEMU's user network, restricted: nothing leaves the host.
	nic := []string{"-netdev", "user,id=n0,restrict=on", "-device", "virtio-net-device,netdev=n0,mac=02:fe:00:00:00:02"}
	b := e.Start(t, cfg, Disks{Base: base}, Options{Extra: nic})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// A first host connects and goes away; the guest must serve the next.
	c, err := b.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitRunning(ctx, t, c)
	c.Close()
	c, err = b.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	out, errOut, ex := run(ctx, t, c, guest.ExecRequest{Argv: []string{"sh", "-c", "echo out; echo err >&2; id -u; exit 3"}, User: "app"})
	if out != "out\n1000\n" || errOut != "err\n" || ex.Code != 3 {
		t.Errorf("exec: stdout %q stderr %q exit %+v", out, errOut, ex)
	}
	out, _, ex = run(ctx, t, c, guest.ExecRequest{Argv: []string{"sh", "-c", "tty; stty size"}, TTY: true, Rows: 30, Cols: 100})
	if !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "30 100") || ex.Code != 0 {
		t.Errorf("exec with tty: %q exit %+v", out, ex)
	}
	out, _, _ = run(ctx, t, c, guest.ExecRequest{Argv: []string{"sh", "-c",
		"ip -o addr show eth0; ip route; ip -6 route; cat /sys/class/net/eth0/mtu; ulimit -n; grep /cache /proc/mounts"}})
	for _, want := range []string{"inet 10.0.2.15/24", "inet6 fd00:f::15/64", "default via 10.0.2.2 dev eth0",
		"default via fd00:f::2 dev eth0", "\n1400\n", "\n4242\n", "tmpfs /cache tmpfs"} {
		if !strings.Contains(out, want) {
			t.Errorf("network/volume/rlimit: %q not in\n%s", want, out)
		}
	}
	if err := c.Signal(ctx, 15); err != nil {
		t.Fatal(err)
	}
	ex, err = c.Wait(ctx)
	if err != nil || ex.Code != 128+15 || ex.Signal != 15 {
		t.Errorf("after SIGTERM: %+v, %v", ex, err)
	}
	if res, err := b.Wait(); err != nil {
		t.Fatalf("qemu: %v\n%s", err, res.Console)
	}
}

func waitRunning(ctx context.Context, t *testing.T, c *guest.Client) {
	t.Helper()
	for {
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == guest.StateRunning {
			return
		}
		if st.State != guest.StateBooting {
			t.Fatalf("state %s: %+v", st.State, st.Exit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func run(ctx context.Context, t *testing.T, c *guest.Client, req guest.ExecRequest) (string, string, guest.ExitStatus) {
	t.Helper()
	p, err := c.Exec(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	var out, errb strings.Builder
	done := make(chan struct{}, 2)
	go func() { copyTo(&out, p.Stdout); done <- struct{}{} }()
	go func() { copyTo(&errb, p.Stderr); done <- struct{}{} }()
	ex, err := p.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	<-done
	<-done
	return strings.ReplaceAll(out.String(), "\r\n", "\n"), errb.String(), ex
}

func copyTo(w *strings.Builder, r interface{ Read([]byte) (int, error) }) {
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		w.Write(buf[:n])
		if err != nil {
			return
		}
	}
}

// TestBootOOM: an entrypoint that needs more memory than the VM has is
// OOM-killed and reported so.
func TestBootOOM(t *testing.T) {
	t.Parallel()
	e := Setup(t)
	base := e.Rootfs(t, nil)
	// Doubling a string: each allocation stays below the VM's memory (so
	// malloc succeeds) until touching them exhausts it.
	cfg := baseConfig("awk", `BEGIN { s = "x"; while (1) s = s s }`)
	cfg.Root = guest.Root{Mode: guest.RootSingle, Device: "/dev/vda"}
	b := e.Start(t, cfg, Disks{Base: base}, Options{MemoryMB: 128})
	res, err := b.Wait()
	if err != nil {
		t.Fatalf("qemu: %v\n%s", err, res.Console)
	}
	ex, ok := ConsoleExit(res.Console)
	if !ok || !ex.OOMKilled || ex.Code != 137 {
		t.Fatalf("exit %+v (found %v), want oom_killed 137\nconsole:\n%s", ex, ok, res.Console)
	}
	// The kill happened inside the app's memory cgroup, not as a global
	// OOM that could leave the kernel nothing to kill but init.
	if !strings.Contains(res.Console, "Memory cgroup out of memory") {
		t.Errorf("not a memory-cgroup OOM:\n%s", res.Console)
	}
}

// TestBootBadInput: each kind of bad input ends the boot with one console
// line and a distinct failure, and the VM powers off (no panic, no hang).
func TestBootBadInput(t *testing.T) {
	t.Parallel()
	e := Setup(t)
	base := e.Rootfs(t, map[string]string{"/notexec": "echo hi\n"})
	for _, tc := range []struct {
		name    string
		mut     func(*guest.RunConfig)
		raw     string
		reason  string
		code    int
		scratch []byte // scratch disk content: a corrupt one
	}{
		{"malformed config", nil, "{not json", guest.ReasonConfig, 125, nil},
		{"entrypoint not found", func(c *guest.RunConfig) { c.Image.Cmd = []string{"/nope"} }, "", guest.ReasonNotFound, 127, nil},
		{"not executable", func(c *guest.RunConfig) { c.Image.Cmd = []string{"/notexec"} }, "", guest.ReasonNotExecutable, 126, nil},
		{"unknown user", func(c *guest.RunConfig) { c.Override.User = "ghost" }, "", guest.ReasonUser, 125, nil},
		{"workdir is a file", func(c *guest.RunConfig) { c.Override.WorkingDir = "/notexec" }, "", guest.ReasonWorkdir, 125, nil},
		{"root device absent", func(c *guest.RunConfig) { c.Root.Device = "/dev/vdz"; c.Root.WaitMS = 200 }, "", guest.ReasonRootDevice, 125, nil},
		{"scratch corrupt", func(c *guest.RunConfig) { c.Root.Scratch = "/dev/vdb" }, "", guest.ReasonScratchCorrupt, 125, []byte(strings.Repeat("junk", 1<<12))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := baseConfig("true")
			// The base is shared by the parallel boots: read-only, with a
			// memory upper (no scratch disk).
			cfg.Root = guest.Root{Mode: guest.RootOverlay, Device: "/dev/vda"}
			if tc.mut != nil {
				tc.mut(cfg)
			}
			o := Options{}
			if tc.raw != "" {
				o.RawConfig = []byte(tc.raw)
			}
			disks := Disks{Base: base}
			if tc.scratch != nil {
				disks.Scratch = filepath.Join(t.TempDir(), "scratch")
				if err := os.WriteFile(disks.Scratch, tc.scratch, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			b := e.Start(t, cfg, disks, o)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			c, err := b.Dial(ctx)
			if err != nil {
				t.Fatal(err)
			}
			ex, err := c.Wait(ctx)
			c.Close()
			res, qerr := b.Wait()
			if err != nil || qerr != nil {
				t.Fatalf("wait %v qemu %v\n%s", err, qerr, res.Console)
			}
			if ex.Failure == nil || ex.Failure.Reason != tc.reason || ex.Code != tc.code {
				t.Errorf("exit %+v (failure %+v), want reason %s code %d", ex, ex.Failure, tc.reason, tc.code)
			}
			if !strings.Contains(res.Console, "ferry-init: error: ") || strings.Contains(res.Console, "Kernel panic") {
				t.Errorf("console lacks the error line or shows a panic:\n%s", res.Console)
			}
		})
	}
}
