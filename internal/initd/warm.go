package initd

import (
	"encoding/binary"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/guest"
)

// Warm starts (docs/warm-starts.md): booted with guest.WarmCmdline,
// ferry-init serves the control channel and waits in the config step —
// before it mounts any disk or configures any network — until the host
// sends a guest.WarmConfig. That is where a template is saved; every
// machine restored from it receives its own config, and init first makes
// the guest its own: fresh entropy, the clock, a boot id, disks probed
// again (their real sizes, no cached block of the template's placeholders).

// bootIDPath is where init keeps the machine's boot id; it is bind-mounted
// over the kernel's, which is read-only and fixed at the template's boot.
const (
	bootIDPath       = stageDir + "/boot_id"
	kernelBootIDPath = "/proc/sys/kernel/random/boot_id"
)

// warmBoot reports whether cmdline asks init to wait for a warm config.
func warmBoot(cmdline string) bool {
	return slices.Contains(cmdlineArgs(cmdline), guest.WarmCmdline)
}

// Warm implements guest.WarmHandler: it hands w and its run config to the
// waiting config step, once.
func (s *supervisor) Warm(w *guest.WarmConfig, cfg *guest.RunConfig) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != guest.StateWaiting || s.warmTaken {
		return &guest.Failure{Reason: guest.ReasonConfig, Message: "init is not waiting for a warm config (state " + s.state + ")"}
	}
	s.warmTaken = true
	s.state = guest.StateBooting
	s.warmCh <- warmReq{w, cfg} // buffered (1): taken once
	return nil
}

// warmReq is a warm config the control channel took, with its run config
// decoded.
type warmReq struct {
	w   *guest.WarmConfig
	cfg *guest.RunConfig
}

// awaitWarm is the config step of a warm boot: it reports StateWaiting,
// waits (without limit: a template waits until it is restored) for the
// host's config, then applies it before anything else runs.
func (in *Init) awaitWarm() error {
	if cs, settled := awaitClock(clocksourcePath, clockSettleLimit, 20*time.Millisecond); !settled {
		in.log.Noticef("warm: the clocksource is still %s after %v; saving anyway", cs, clockSettleLimit)
	}
	in.sup.mu.Lock()
	in.sup.state = guest.StateWaiting
	in.sup.mu.Unlock()
	in.log.Noticef("waiting for a warm config")
	req := <-in.sup.warmCh
	in.sup.rehearsing.Lock() // a rehearsal in progress ends first
	in.sup.rehearsing.Unlock()
	t := time.Now()
	w, cfg := req.w, req.cfg
	in.cfg = cfg
	in.log.Debug = in.log.Debug || cfg.Debug
	if err := applyWarm(w, laxDisk(cfg.Root), realWarmSystem{}, in.log.Infof); err != nil {
		return err
	}
	if err := setWarmMACs(cfg.Network, netlinkMACs{}); err != nil {
		return &guest.Failure{Reason: guest.ReasonNetwork, Message: "warm: " + err.Error()}
	}
	in.log.Infof("warm config applied in %v", time.Since(t))
	return nil
}

// clocksourcePath names the kernel's current clocksource.
const clocksourcePath = "/sys/devices/system/clocksource/clocksource0/current_clocksource"

// clockSettleLimit bounds awaitClock in a template boot: a kernel whose
// TSC never verifies stays on jiffies, and is saved so.
const clockSettleLimit = 10 * time.Second

// bootClocks are the clocksources an x86 kernel runs on while it boots:
// tsc-early until its TSC is calibrated again (about a second after
// boot), then refined-jiffies until the watchdog has verified tsc.
var bootClocks = []string{"tsc-early", "refined-jiffies", "jiffies"}

// awaitClock waits, up to limit, until the clocksource named at path is no
// longer a boot-time one, and returns the last one read and whether it
// settled. A template is saved only then: restored before, every machine of
// it would run the kernel's TSC calibration and switch after its restore —
// on its critical path, and on a jiffies clock (10 ms resolution, no high
// resolution timers) until the switch.
func awaitClock(path string, limit, poll time.Duration) (string, bool) {
	deadline := time.Now().Add(limit)
	for {
		b, err := os.ReadFile(path)
		cs := strings.TrimSpace(string(b))
		if err != nil || !slices.Contains(bootClocks, cs) {
			return cs, true // no clocksource sysfs: nothing to wait for
		}
		if time.Now().After(deadline) {
			return cs, false
		}
		time.Sleep(poll)
	}
}

// warmSystem is what applying a warm config changes in the guest.
type warmSystem interface {
	AddEntropy(b []byte) error
	SetClock(t time.Time) error
	// ReprobeDisks gives the kernel the machine's disks (sizes in
	// virtio order; lax names the disk that may stay larger than its
	// size, see laxDisk).
	ReprobeDisks(sizes []int64, lax string) error
	SetBootID(id string) error
}

// laxDisk is the disk whose kernel size may exceed the machine's: an
// overlay root's read-only base (vda). ext4 reads no block past its own
// block count, and a template's read-only placeholder is as large as
// most bases (machine's templates), so a restored base is not re-probed;
// any other disk must have its exact size.
func laxDisk(r guest.Root) string {
	if r.Mode != guest.RootOverlay {
		return ""
	}
	return strings.TrimPrefix(r.Device, "/dev/")
}

// applyWarm makes a restored guest its own machine, entropy first (before
// anything could read the template's random state).
// Each part's time goes to logf (init's debug log). w's run config was
// decoded by the caller; the rest is checked here.
func applyWarm(w *guest.WarmConfig, lax string, sys warmSystem, logf func(string, ...any)) error {
	if err := w.ValidateState(); err != nil {
		return err
	}
	t := time.Now()
	lap := func(what string) {
		logf("warm: %s in %v", what, time.Since(t))
		t = time.Now()
	}
	if err := sys.AddEntropy(w.Entropy); err != nil {
		return fmt.Errorf("warm: entropy: %w", err)
	}
	lap("entropy")
	if err := sys.SetClock(time.Unix(0, w.TimeUnixNano)); err != nil {
		return fmt.Errorf("warm: clock: %w", err)
	}
	lap("clock")
	if err := sys.ReprobeDisks(w.DiskBytes, lax); err != nil {
		return fmt.Errorf("warm: disks: %w", err)
	}
	lap("disks")
	if err := sys.SetBootID(w.BootID); err != nil {
		return fmt.Errorf("warm: boot id: %w", err)
	}
	lap("boot id")
	return nil
}

// macLinks is what setWarmMACs changes: the guest's links by MAC.
type macLinks interface {
	// MACs maps each link's MAC (lower case) to its name.
	MACs() (map[string]string, error)
	SetMAC(link, mac string) error
}

// setWarmMACs gives the NIC the template booted with as its i-th
// (guest.TemplateMAC(i)) the MAC of the run config's i-th interface: a
// restored guest's NICs all have the template's MACs, and cold or warm a
// machine's NIC must have its own (configureNetwork finds it by MAC).
func setWarmMACs(ifs []guest.Interface, links macLinks) error {
	if len(ifs) == 0 {
		return nil
	}
	have, err := links.MACs()
	if err != nil {
		return err
	}
	for i, ifc := range ifs {
		if ifc.MAC == "" {
			continue
		}
		want, err := net.ParseMAC(ifc.MAC)
		if err != nil {
			return fmt.Errorf("interface %d: MAC %q: %w", i, ifc.MAC, err)
		}
		name, ok := have[guest.TemplateMAC(i)]
		if !ok {
			if _, already := have[want.String()]; already {
				continue // a template without this NIC's placeholder: nothing to change
			}
			return fmt.Errorf("no NIC with the template's MAC %s for interface %d (%s)", guest.TemplateMAC(i), i, ifc.MAC)
		}
		if err := links.SetMAC(name, want.String()); err != nil {
			return fmt.Errorf("%s: set MAC %s: %w", name, want, err)
		}
	}
	return nil
}

type netlinkMACs struct{}

func (netlinkMACs) MACs() (map[string]string, error) {
	ls, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	out := map[string]string{}
	for _, l := range ls {
		if a := l.Attrs(); len(a.HardwareAddr) > 0 {
			out[strings.ToLower(a.HardwareAddr.String())] = a.Name
		}
	}
	return out, nil
}

func (netlinkMACs) SetMAC(name, mac string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return err
	}
	return netlink.LinkSetHardwareAddr(l, hw)
}

type realWarmSystem struct{}

func (realWarmSystem) AddEntropy(b []byte) error { return addEntropy("/dev/urandom", b) }

func (realWarmSystem) SetClock(t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	return unix.ClockSettime(unix.CLOCK_REALTIME, &ts)
}

func (realWarmSystem) ReprobeDisks(sizes []int64, lax string) error {
	return reprobeDisks(virtioBlkDriver, sizes, lax, sysBlock{})
}

func (realWarmSystem) SetBootID(id string) error {
	return bindBootID(bootIDPath, kernelBootIDPath, id)
}

// addEntropy mixes b into the kernel's pool through dev (/dev/urandom)
// and credits all of it (RNDADDENTROPY, root only), then reseeds the
// kernel's generator from it (RNDRESEEDCRNG): the pool counts as
// initialised at once and the generator's state is no longer the
// template's, as it must be before a restored guest runs anything.
func addEntropy(dev string, b []byte) error {
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	// struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
	info := make([]byte, 8+len(b)+3) // room to round buf up to __u32s
	binary.NativeEndian.PutUint32(info[0:], uint32(len(b)*8))
	binary.NativeEndian.PutUint32(info[4:], uint32(len(b)))
	copy(info[8:], b)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.RNDADDENTROPY, uintptr(unsafe.Pointer(&info[0]))); errno != 0 {
		return fmt.Errorf("RNDADDENTROPY on %s: %w", dev, errno)
	}
	// A pool that was initialised when the template was saved is not
	// reseeded by new entropy until its reseed interval passes (Linux 6.1):
	// force it, so the next read already differs from every other restore.
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.RNDRESEEDCRNG, 0); errno != 0 {
		return fmt.Errorf("RNDRESEEDCRNG on %s: %w", dev, errno)
	}
	return nil
}

// virtioBlkDriver is virtio_blk's directory in sysfs.
const virtioBlkDriver = "/sys/bus/virtio/drivers/virtio_blk"

// sizeSettle bounds the wait for a writable disk's new size: QEMU's
// block_resize (on resume) reaches the kernel as a config interrupt whose
// work may not have run yet.
const sizeSettle = 200 * time.Millisecond

// blockDevs is what reprobeDisks reads and does to the guest's disks.
type blockDevs interface {
	// Size is disk's size as the kernel has it, in bytes, and whether
	// the disk is read-only.
	Size(disk string) (int64, bool, error)
	// Flush drops disk's cached blocks (BLKFLSBUF).
	Flush(disk string) error
	// Write writes data to a sysfs file (bind, unbind).
	Write(path, data string) error
}

// reprobeDisks makes the kernel's view of each virtio disk the machine's
// own. The template's kernel probed placeholder disks: it holds their
// sizes and, from the partition scan, their first blocks in its cache. A
// disk whose size the kernel already has (a writable one QEMU resized on
// resume), or lax when it is larger (an overlay's read-only base), only
// has its cached blocks dropped; any other is re-probed (rebindDisks),
// which costs tens of milliseconds a disk under TCG. sizes are the real
// ones in virtio order; a disk without one is re-probed.
func reprobeDisks(drv string, sizes []int64, lax string, b blockDevs) error {
	disks, err := virtioDisks(drv)
	if err != nil {
		return err
	}
	var stale []string
	for i, dev := range sortedDevs(disks) {
		name := disks[dev]
		if i >= len(sizes) || !sizeFits(b, name, sizes[i], name == lax, sizeSettle) {
			stale = append(stale, dev)
			continue
		}
		if err := b.Flush(name); err != nil {
			return fmt.Errorf("drop cached blocks of %s: %w", name, err)
		}
	}
	return rebindDisks(drv, disks, stale, b.Write)
}

// sizeFits reports whether the kernel's size of disk is want (or, lax,
// at least want), waiting up to settle for a writable disk's to change.
func sizeFits(b blockDevs, disk string, want int64, lax bool, settle time.Duration) bool {
	deadline := time.Now().Add(settle)
	for {
		have, ro, err := b.Size(disk)
		switch {
		case err != nil:
			return false
		case have == want, lax && have > want:
			return true
		case ro || time.Now().After(deadline):
			return false // nothing resizes a read-only disk
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sortedDevs are disks' virtio devices in virtio order.
func sortedDevs(disks map[string]string) []string {
	devs := slices.Collect(maps.Keys(disks))
	slices.SortFunc(devs, byVirtioIndex)
	return devs
}

func byVirtioIndex(a, b string) int { return virtioIndex(a) - virtioIndex(b) }

// rebindDisks re-probes the virtio devices devs (unbind all, then bind in
// order, of disks: device → disk name): a fresh probe reads the real size
// into a fresh block device, nothing cached. Disks keep their names: the
// kernel gives each probe the lowest free vdX, and the names are checked.
func rebindDisks(drv string, disks map[string]string, devs []string, write func(path, data string) error) error {
	if len(devs) == 0 {
		return nil
	}
	slices.SortFunc(devs, byVirtioIndex)
	for _, d := range devs {
		if err := write(filepath.Join(drv, "unbind"), d); err != nil {
			return fmt.Errorf("unbind %s (%s): %w", d, disks[d], err)
		}
	}
	for _, d := range devs {
		if err := write(filepath.Join(drv, "bind"), d); err != nil {
			return fmt.Errorf("bind %s (%s): %w", d, disks[d], err)
		}
	}
	after, err := virtioDisks(drv)
	if err != nil {
		return err
	}
	for _, d := range devs {
		if after[d] != disks[d] {
			return fmt.Errorf("%s was %s and is %q after its re-probe", d, disks[d], after[d])
		}
	}
	return nil
}

// virtioDisks maps each virtio device bound to virtio_blk (virtio0, ...)
// to its disk's name (vda, ...).
func virtioDisks(drv string) (map[string]string, error) {
	m, err := filepath.Glob(filepath.Join(drv, "virtio*", "block", "*"))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, p := range m {
		out[filepath.Base(filepath.Dir(filepath.Dir(p)))] = filepath.Base(p)
	}
	return out, nil
}

func virtioIndex(dev string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(dev, "virtio"))
	return n
}

// sysBlock is blockDevs on the guest's sysfs and /dev.
type sysBlock struct{}

func (sysBlock) Size(disk string) (int64, bool, error) {
	b, err := os.ReadFile(filepath.Join("/sys/block", disk, "size"))
	if err != nil {
		return 0, false, err
	}
	sectors, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%s size: %w", disk, err)
	}
	ro, err := os.ReadFile(filepath.Join("/sys/block", disk, "ro"))
	if err != nil {
		return 0, false, err
	}
	return sectors * 512, strings.TrimSpace(string(ro)) == "1", nil
}

func (sysBlock) Flush(disk string) error {
	f, err := os.Open("/dev/" + disk)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.IoctlSetInt(int(f.Fd()), unix.BLKFLSBUF, 0); err != nil {
		return fmt.Errorf("BLKFLSBUF: %w", err)
	}
	return nil
}

func (sysBlock) Write(path, data string) error { return os.WriteFile(path, []byte(data), 0) }

// bindBootID writes id to file and bind-mounts it over target (the
// kernel's boot id). The mount moves with /proc into the new root.
func bindBootID(file, target, id string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(file, []byte(id+"\n"), 0o444); err != nil {
		return err
	}
	if err := unix.Mount(file, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", target, err)
	}
	// Read-only, like the kernel's own.
	if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("remount %s read-only: %w", target, err)
	}
	return nil
}
