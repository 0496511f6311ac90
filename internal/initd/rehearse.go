package initd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/guest"
)

// Rehearsal (guest.Rehearser, docs/warm-starts.md): a spare is a restored
// guest that waits for a machine to claim it. Under TCG its VMM starts
// with an empty translation cache, so every kernel and init path a start
// takes would be translated while the machine starts; a spare has time
// before that. Asked to rehearse with the warm config of a machine that
// does not exist (the spare's shape: its placeholder disks, its NICs on
// TEST-NET addresses), init runs a start's steps with it — the warm
// config applied (entropy, clock, disks, a boot id of its own, MACs), the
// root mounted from the placeholder disks with the late mounts in it and
// the /etc files written (an overlay copy-up), the user and the command
// looked up, the network configured, the app cgroup made and a process
// forked into it and exec'd with its output on pipes, the console's
// output processing switched — and undoes each: nothing of it is left
// for the machine that claims the spare.

// rehearsalDir is where a rehearsal mounts (in the initramfs, removed).
const rehearsalDir = stageDir + "/rehearse"

// Rehearse implements guest.Rehearser: only while init waits for a warm
// config; the config step waits for a rehearsal in progress to end.
func (s *supervisor) Rehearse(w *guest.WarmConfig, cfg *guest.RunConfig) error {
	s.mu.Lock()
	if s.state != guest.StateWaiting || s.warmTaken {
		st := s.state
		s.mu.Unlock()
		return &guest.Failure{Reason: guest.ReasonConfig, Message: "rehearse: init is not waiting for a warm config (state " + st + ")"}
	}
	s.rehearsing.Lock()
	s.mu.Unlock()
	defer s.rehearsing.Unlock()
	t := time.Now()
	if err := s.in.rehearse(w, cfg); err != nil {
		return fmt.Errorf("rehearse: %w", err)
	}
	s.in.log.Infof("rehearsed a start in %v", time.Since(t))
	return nil
}

func (in *Init) rehearse(w *guest.WarmConfig, cfg *guest.RunConfig) error {
	return errors.Join(in.rehearseWarm(w, cfg), rehearseRoot(in.mnt, in.log, cfg),
		rehearseNetwork(cfg.Network, in.log), rehearseConsole(), in.rehearseSpawn(cfg))
}

// rehearseWarm applies w as a claim does, but binds its boot id over a
// file of the rehearsal's, not the kernel's. cfg's NICs have their
// template MACs: setting them changes nothing.
func (in *Init) rehearseWarm(w *guest.WarmConfig, cfg *guest.RunConfig) error {
	if err := applyWarm(w, laxDisk(cfg.Root), rehearsalWarm{}, in.log.Infof); err != nil {
		return err
	}
	return setWarmMACs(cfg.Network, netlinkMACs{})
}

// rehearsalWarm is the guest a rehearsal's warm config changes: the real
// one but for the boot id.
type rehearsalWarm struct{ realWarmSystem }

func (rehearsalWarm) SetBootID(id string) (err error) {
	file, target := stageDir+"/rehearse-boot_id", stageDir+"/rehearse-boot_id.target"
	if err := os.MkdirAll(stageDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(target, nil, 0o444); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, os.Remove(target), os.Remove(file)) }()
	if err := bindBootID(file, target, id); err != nil {
		return err
	}
	return unix.Unmount(target, 0)
}

// rehearseRoot mounts a tmpfs and in it the root a start assembles: an
// overlay whose lower and upper are the ext4 file systems of the first two
// virtio disks when they hold some (a spare's placeholders, which the
// daemon formats; directories of the tmpfs otherwise), with a second
// lower layer holding /etc files that the config's replace (a copy-up);
// in it the late mounts, the user's and the command's lookups; and a
// mount moved as the switch to the root moves it. Then it unmounts and
// removes all, and drops the disks' cached blocks (BLKFLSBUF), so nothing
// of the placeholders is left for the disks a claim puts in their place.
func rehearseRoot(mnt Mounter, log *Logger, cfg *guest.RunConfig) (err error) {
	d := rehearsalDir
	if err := mnt.Mount(Mount{Source: "tmpfs", Target: d, FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=0700"}); err != nil {
		return err
	}
	defer func() {
		err = errors.Join(err, unix.Unmount(d, unix.MNT_DETACH), os.Remove(d))
	}()
	lower, upper := filepath.Join(d, "lower"), d
	if base, scratch, ok := placeholderDisks(); ok {
		lower, upper = filepath.Join(d, "base"), filepath.Join(d, "scratch")
		if err := mnt.Mount(Mount{Source: "/dev/" + base, Target: lower, FSType: "ext4", Flags: unix.MS_RDONLY}); err != nil {
			return err
		}
		defer func() { err = errors.Join(err, unix.Unmount(lower, 0), sysBlock{}.Flush(base)) }()
		if err := mnt.Mount(Mount{Source: "/dev/" + scratch, Target: upper, FSType: "ext4", Flags: unix.MS_RELATIME, Data: "noinit_itable"}); err != nil {
			return err
		}
		defer func() { err = errors.Join(err, unix.Unmount(upper, 0), sysBlock{}.Flush(scratch)) }()
	} else if err := os.Mkdir(lower, 0o700); err != nil {
		return err
	}
	// The image's layer: /etc as an image has it, and a command.
	image := filepath.Join(upper, "image")
	for name, b := range map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nrehearsal:x:1000:1000::/home/rehearsal:/bin/sh\n",
		"etc/group":  "root:x:0:\nrehearsal:x:1000:\n",
		"etc/hosts":  "127.0.0.1 localhost\n", "etc/hostname": "image\n", "etc/resolv.conf": "",
		"bin/true": "",
	} {
		p := filepath.Join(image, name)
		if err := errors.Join(os.MkdirAll(filepath.Dir(p), 0o755), os.WriteFile(p, []byte(b), 0o755)); err != nil {
			return err
		}
	}
	for _, sub := range []string{"upper", "work"} {
		if err := os.Mkdir(filepath.Join(upper, sub), 0o700); err != nil {
			return err
		}
	}
	merged := filepath.Join(d, "merged")
	if err := mnt.Mount(Mount{Source: "overlay", Target: merged, FSType: "overlay",
		Data: "lowerdir=" + image + ":" + lower + ",upperdir=" + upper + "/upper,workdir=" + upper + "/work"}); err != nil {
		return err
	}
	if err := errors.Join(rehearseInRoot(mnt, log, cfg, merged), unix.Unmount(merged, 0)); err != nil {
		return err
	}
	return rehearseMove(d)
}

// rehearseInRoot makes the late mounts (but the cgroup layout's) in root,
// writes cfg's /etc files there, looks up a user and a command, and
// unmounts what it mounted.
func rehearseInRoot(mnt Mounter, log *Logger, cfg *guest.RunConfig, root string) (err error) {
	for _, m := range LateMounts(CgroupLayout{}) {
		m.Target = filepath.Join(root, m.Target)
		if err := mnt.Mount(m); err != nil && !m.Optional {
			return err
		} else if err == nil {
			defer func() { err = errors.Join(err, unix.Unmount(m.Target, 0)) }()
		}
	}
	if err := writeEtcFiles(cfg, root); err != nil {
		return err
	}
	c := *cfg
	c.Override.User = "rehearsal"
	_, env, err := resolveUser(&c, root)
	if err != nil {
		return err
	}
	_, err = LookPath("true", filepath.Join(root, "bin")+":"+lookupEnv(env, "PATH"), root)
	return err
}

// rehearseMove moves a mount as the switch to the root does.
func rehearseMove(d string) error {
	from, to := filepath.Join(d, "from"), filepath.Join(d, "to")
	if err := errors.Join(os.Mkdir(from, 0o700), os.Mkdir(to, 0o700)); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", from, "tmpfs", 0, "mode=0700"); err != nil {
		return err
	}
	if err := unix.Mount(from, to, "", unix.MS_MOVE, ""); err != nil {
		return errors.Join(err, unix.Unmount(from, 0))
	}
	return unix.Unmount(to, 0)
}

// rehearseNetwork configures ifs as the network step does (cfg's NICs,
// by their template MACs, on TEST-NET addresses), then sets each link
// down (which drops its IPv6 addresses and its routes), removes its IPv4
// addresses and gives it back its MTU. lo stays up, as the network step
// leaves it.
func rehearseNetwork(ifs []guest.Interface, log *Logger) error {
	links, err := netlink.LinkList()
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	mtus := map[int]int{}
	for _, ifc := range ifs {
		if l := findLink(links, ifc); l != nil {
			mtus[l.Attrs().Index] = l.Attrs().MTU
		}
	}
	cerr := configureNetwork(ifs, log)
	var errs []error
	for index, mtu := range mtus {
		l, err := netlink.LinkByIndex(index)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := netlink.LinkSetDown(l); err != nil {
			errs = append(errs, fmt.Errorf("%s down: %w", l.Attrs().Name, err))
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			errs = append(errs, err)
		}
		for _, a := range addrs {
			if err := netlink.AddrDel(l, &a); err != nil {
				errs = append(errs, fmt.Errorf("%s: remove %s: %w", l.Attrs().Name, a.IPNet, err))
			}
		}
		if l.Attrs().MTU != mtu {
			if err := netlink.LinkSetMTU(l, mtu); err != nil {
				errs = append(errs, fmt.Errorf("%s mtu %d: %w", l.Attrs().Name, mtu, err))
			}
		}
	}
	return errors.Join(append([]error{cerr}, errs...)...)
}

// rehearseConsole switches the console's output processing off as a
// start with records does (rawConsoleOutput), then back as it was.
func rehearseConsole() error {
	return withConsoleTermios(func(fd int, t *unix.Termios) error {
		raw := *t
		raw.Oflag &^= unix.OPOST
		return errors.Join(unix.IoctlSetTermios(fd, unix.TCSETS, &raw), unix.IoctlSetTermios(fd, unix.TCSETS, t))
	})
}

// rehearseSpawn makes the app cgroup (cgroup v2: on a cgroup2 mount of
// its own) and starts a process in it as the entrypoint is started —
// pipes for its output, copied, the reaper's fork into the cgroup — that
// execs init as a process that exits at once (guest.RehearseHelperArg);
// then removes the cgroup, the memory controller it enabled and the mount.
func (in *Init) rehearseSpawn(cfg *guest.RunConfig) (err error) {
	var cg *appCgroup
	if v := cfg.CgroupVersion; v == "" || v == guest.CgroupV2 {
		if err := unix.Mount("cgroup2", cgroupRoot, "cgroup2", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("mount cgroup2: %w", err)
		}
		defer func() { err = errors.Join(err, unix.Unmount(cgroupRoot, 0)) }()
		if cg, err = setupAppCgroup(cfg.CgroupVersion, in.log); err != nil {
			return err
		}
		defer func() {
			err = errors.Join(err, cg.fd.Close(), unix.Rmdir(appCgroupDir),
				os.WriteFile(cgroupRoot+"/cgroup.subtree_control", []byte("-memory"), 0))
		}()
		_ = cg.oomKills()
	}
	exited := make(chan unix.WaitStatus, 1)
	p, err := in.sup.start(context.Background(), procSpec{
		path:   guest.BuildHelper,
		proc:   Proc{Argv: []string{guest.BuildHelper, guest.RehearseHelperArg}, Env: []string{"PATH=/bin"}, Dir: "/", Cgroup: cg},
		onExit: func(ws unix.WaitStatus) { exited <- ws },
	}, guest.ExecIO{Stdout: io.Discard, Stderr: io.Discard})
	if err != nil {
		return err
	}
	if ws := <-exited; ws.ExitStatus() != 0 {
		return fmt.Errorf("exec: init exited %d", ws.ExitStatus())
	}
	<-p.done
	return nil
}

// placeholderDisks are vda and vdb when vda is read-only and both hold an
// ext4 file system (a spare's placeholders).
func placeholderDisks() (base, scratch string, ok bool) {
	for _, disk := range []string{"vda", "vdb"} {
		if !isExt4("/dev/" + disk) {
			return "", "", false
		}
	}
	ro, err := os.ReadFile("/sys/block/vda/ro")
	return "vda", "vdb", err == nil && strings.TrimSpace(string(ro)) == "1"
}

// isExt4 reports whether dev holds an ext4 superblock (its magic, 0xEF53,
// at byte 1080).
func isExt4(dev string) bool {
	f, err := os.Open(dev)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, 2)
	_, err = f.ReadAt(b, 1080)
	return err == nil && b[0] == 0x53 && b[1] == 0xef
}
