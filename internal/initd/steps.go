package initd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/guest"
)

// Step is one named boot step. Reason is the failure reason reported when
// it fails with a plain error (a *guest.Failure carries its own).
type Step struct {
	Name   string
	Reason string
	Run    func(in *Init) error
}

// Steps is init's boot, in order.
var Steps = []Step{
	{"mount-early", guest.ReasonMount, (*Init).mountEarly},
	{"modules", guest.ReasonInit, func(in *Init) error { return loadModules(in.log) }},
	{"control", guest.ReasonInit, (*Init).startControl},
	{"config", guest.ReasonConfig, (*Init).loadConfig},
	{"root", guest.ReasonRootDevice, (*Init).assembleRoot},
	{"switch-root", guest.ReasonInit, func(*Init) error { return switchRoot() }},
	{"mount-late", guest.ReasonMount, (*Init).mountLate},
	{"hostname", guest.ReasonInit, (*Init).setHostname},
	{"etc-files", guest.ReasonInit, (*Init).writeEtcFiles},
	{"network", guest.ReasonNetwork, func(in *Init) error { return configureNetwork(in.cfg.Network, in.log) }},
	{"volumes", guest.ReasonMount, (*Init).mountVolumes},
	{"rlimits", guest.ReasonInit, (*Init).setRlimits},
	{"cgroup", guest.ReasonInit, (*Init).setupCgroup},
	{"user", guest.ReasonUser, (*Init).resolveUser},
	{"workdir", guest.ReasonWorkdir, (*Init).prepareWorkdir},
	{"command", guest.ReasonNotFound, (*Init).resolveCommand},
	{"spawn", guest.ReasonInit, (*Init).spawnEntrypoint},
}

// asFailure wraps a step error into a Failure.
func asFailure(st Step, err error) *guest.Failure {
	var f *guest.Failure
	if errors.As(err, &f) {
		c := *f
		c.Step = st.Name
		return &c
	}
	return &guest.Failure{Reason: st.Reason, Step: st.Name, Message: err.Error()}
}

func (in *Init) mountEarly() error {
	if err := mountAll(in.mnt, in.log, EarlyMounts()); err != nil {
		return err
	}
	// Writes to /dev/kmsg are rate-limited (10 lines per 5 s) by default;
	// init's lines, the exit line above all, must not be dropped.
	_ = os.WriteFile("/proc/sys/kernel/printk_devkmsg", []byte("on\n"), 0)
	kmsg, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	console, _ := os.OpenFile("/dev/console", os.O_WRONLY|unix.O_NOCTTY, 0)
	in.log.Attach(kmsg, console)
	_ = os.WriteFile("/proc/self/oom_score_adj", []byte("-1000"), 0)
	return nil
}

func (in *Init) loadConfig() error {
	if cmdline, _ := os.ReadFile("/proc/cmdline"); warmBoot(string(cmdline)) {
		return in.awaitWarm()
	}
	t0 := time.Now()
	b, err := os.ReadFile(guest.ConfigPath)
	if err != nil {
		return fmt.Errorf("read %s: %w", guest.ConfigPath, err)
	}
	t1 := time.Now()
	cfg, err := guest.ParseConfig(b)
	if err != nil {
		return err
	}
	in.cfg = cfg
	in.log.Debug = in.log.Debug || cfg.Debug
	in.log.Infof("config: read %v, parsed %v", t1.Sub(t0), time.Since(t1))
	return nil
}

func (in *Init) assembleRoot() error {
	h, err := assembleRoot(in.cfg.Root, in.mnt, in.log)
	if err != nil {
		return err
	}
	in.root = h
	return nil
}

func (in *Init) mountLate() error {
	var controllers []string
	if v := in.cfg.CgroupVersion; v != "" && v != guest.CgroupV2 {
		b, err := os.ReadFile("/proc/cgroups")
		if err != nil {
			return fmt.Errorf("cgroup %s: %w", v, err)
		}
		controllers = ParseControllers(b)
	}
	cg := CgroupMounts(in.cfg.CgroupVersion, controllers)
	if err := mountAll(in.mnt, in.log, LateMounts(cg)); err != nil {
		return err
	}
	for _, l := range append(cg.Links, DevLinks...) {
		if _, err := os.Lstat(l[1]); err == nil {
			continue
		}
		if err := os.Symlink(l[0], l[1]); err != nil {
			return err
		}
	}
	return nil
}

func (in *Init) setHostname() error {
	if in.cfg.Hostname == "" {
		return nil
	}
	if err := unix.Sethostname([]byte(in.cfg.Hostname)); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	return nil
}

// writeEtcFiles writes /etc/hostname, /etc/hosts and /etc/resolv.conf.
func (in *Init) writeEtcFiles() error { return writeEtcFiles(in.cfg, "/") }

// writeEtcFiles writes cfg's /etc/hostname, /etc/hosts and
// /etc/resolv.conf under root, replacing symlinks (an image's resolv.conf
// often points into /run).
func writeEtcFiles(cfg *guest.RunConfig, root string) error {
	files := map[string][]byte{}
	if cfg.Hostname != "" {
		files["/etc/hostname"] = []byte(cfg.Hostname + "\n")
	}
	if cfg.Hostname != "" || len(cfg.Hosts) > 0 {
		files["/etc/hosts"] = HostsFile(cfg)
	}
	if cfg.DNS != nil {
		files["/etc/resolv.conf"] = ResolvConf(cfg.DNS)
	}
	for name, b := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			_ = os.Remove(p)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (in *Init) setRlimits() error {
	if in.cfg.Rlimits == nil || in.cfg.Rlimits.NoFile == 0 {
		return nil
	}
	n := in.cfg.Rlimits.NoFile
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: n, Max: n}); err != nil {
		return fmt.Errorf("rlimit nofile %d: %w", n, err)
	}
	return nil
}

// setupCgroup puts the app in a memory cgroup; without one (no cgroup2 or
// memcg) the app runs in the root cgroup and OOM detection falls back to
// the global counter.
func (in *Init) setupCgroup() error {
	cg, err := setupAppCgroup(in.cfg.CgroupVersion, in.log)
	if err != nil {
		in.log.Noticef("warning: no app memory cgroup (%v): OOM is detected from /proc/vmstat", err)
		return nil
	}
	in.cg = cg
	return nil
}

func (in *Init) resolveUser() error {
	c, env, err := resolveUser(in.cfg, "/")
	in.cred, in.env = c, env
	return err
}

// resolveUser resolves cfg's user from the passwd and group files under
// root, and builds the entrypoint's environment for it.
func resolveUser(cfg *guest.RunConfig, root string) (Cred, []string, error) {
	passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd"))
	group, _ := os.ReadFile(filepath.Join(root, "etc/group"))
	c, err := ResolveUser(cfg.User(), passwd, group)
	if err != nil {
		return Cred{}, nil, err
	}
	return c, BuildEnv(cfg.Image.Env, cfg.Override.Env, c.Home, cfg.Hostname, cfg.TTY), nil
}

// prepareWorkdir creates the working directory when missing (Docker does,
// owned by the user); a path that exists but is not a directory fails.
func (in *Init) prepareWorkdir() error {
	d := in.cfg.WorkingDir()
	fi, err := os.Stat(d)
	switch {
	case err == nil && !fi.IsDir():
		return &guest.Failure{Reason: guest.ReasonWorkdir, Message: fmt.Sprintf("working dir %s is not a directory", d)}
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(d, 0o755); err != nil {
			return &guest.Failure{Reason: guest.ReasonWorkdir, Message: fmt.Sprintf("create working dir %s: %v", d, err)}
		}
		_ = os.Chown(d, int(in.cred.UID), int(in.cred.GID))
	case err != nil:
		return &guest.Failure{Reason: guest.ReasonWorkdir, Message: err.Error()}
	}
	in.workdir = d
	return nil
}

func (in *Init) resolveCommand() error {
	argv := in.cfg.Argv()
	p, err := LookPath(argv[0], lookupEnv(in.env, "PATH"), in.workdir)
	if err != nil {
		return err
	}
	in.path = p
	return nil
}

// consoleTTY returns the device behind /dev/console (e.g. /dev/ttyS0), which
// can be a controlling terminal where /dev/console cannot.
func consoleTTY() string {
	b, err := os.ReadFile("/sys/class/tty/console/active")
	if err == nil {
		// A device name, never a path: the kernel writes e.g. "tty0 ttyS0".
		if f := lastField(string(b)); f != "" && f != "." && f != ".." && !strings.ContainsRune(f, '/') {
			dev := "/dev/" + f
			if _, err := os.Stat(dev); err == nil { //nolint:gosec // G703: f is one name under /dev, checked above
				return dev
			}
		}
	}
	return "/dev/console"
}

func lastField(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}

func (in *Init) spawnEntrypoint() error {
	if !in.cfg.Attach {
		in.sup.refuseAttach(&guest.Failure{Reason: guest.ReasonInit, Message: "attach: the run config has no attach"})
	} else {
		in.sup.markReady(in)
		if attached, err := in.waitAttached(); attached || err != nil {
			return err
		}
	}
	if consoleRecords(in.cfg) > 0 {
		return in.spawnRecorded()
	}
	var files []*os.File
	if in.cfg.TTY {
		tty, err := os.OpenFile(consoleTTY(), os.O_RDWR|unix.O_NOCTTY, 0)
		if err != nil {
			return fmt.Errorf("open console: %w", err)
		}
		defer tty.Close()
		files = []*os.File{tty, tty, tty}
	} else {
		null, err := os.Open("/dev/null")
		if err != nil {
			return err
		}
		defer null.Close()
		out, err := os.OpenFile("/dev/console", os.O_WRONLY|unix.O_NOCTTY, 0)
		if err != nil {
			return fmt.Errorf("open console: %w", err)
		}
		defer out.Close()
		files = []*os.File{null, out, out}
	}
	in.oomBefore, in.cgOOMBefore = oomKills(), in.cg.oomKills()
	in.sup.markReady(in)
	pid, ch, err := in.reaper.Spawn(in.path, Proc{Argv: in.cfg.Argv(), Env: in.env, Dir: in.workdir, Cred: in.cred, Files: files, Ctty: in.cfg.TTY, Cgroup: in.cg})
	if err != nil {
		return err
	}
	in.sup.started(pid)
	in.exitCh = ch
	return nil
}
