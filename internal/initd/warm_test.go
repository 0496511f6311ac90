package initd

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

func TestWarmBoot(t *testing.T) {
	for cmdline, want := range map[string]bool{
		"console=ttyS0 ferry.warm=1 quiet":     true,
		"console=ttyS0 quiet":                  false,
		"ferry.warm=0":                         false,
		`x="ferry.warm=1 y"`:                   false,
		"console=ttyS0 ferry.warm=1":           true,
		"console=ttyS0 ferry.warmer=1 ferry.w": false,
	} {
		if got := warmBoot(cmdline); got != want {
			t.Errorf("warmBoot(%q) = %v, want %v", cmdline, got, want)
		}
	}
}

// A template waits until its kernel has left the boot-time clocksources
// (tsc-early, refined-jiffies) before it says it waits, and no longer
// than the limit when it never does.
func TestAwaitClock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "current_clocksource")
	if err := os.WriteFile(path, []byte("tsc-early\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(30 * time.Millisecond)
		_ = os.WriteFile(path+".new", []byte("refined-jiffies\n"), 0o644)
		_ = os.Rename(path+".new", path)
		time.Sleep(30 * time.Millisecond)
		_ = os.WriteFile(path+".new", []byte("tsc\n"), 0o644)
		_ = os.Rename(path+".new", path)
	}()
	if cs, ok := awaitClock(path, time.Minute, time.Millisecond); !ok || cs != "tsc" {
		t.Errorf("awaitClock = %q, %v; want tsc, settled", cs, ok)
	}
	if err := os.WriteFile(path, []byte("refined-jiffies\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if cs, ok := awaitClock(path, 20*time.Millisecond, time.Millisecond); ok || cs != "refined-jiffies" {
		t.Errorf("awaitClock on a clock that never settles = %q, %v; want refined-jiffies, not settled", cs, ok)
	}
	for _, cs := range []string{"kvm-clock", "tsc"} {
		if err := os.WriteFile(path, []byte(cs+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, ok := awaitClock(path, time.Minute, time.Millisecond); !ok || got != cs {
			t.Errorf("awaitClock on %s = %q, %v", cs, got, ok)
		}
	}
	if _, ok := awaitClock(filepath.Join(t.TempDir(), "none"), time.Minute, time.Millisecond); !ok {
		t.Error("no clocksource file: awaitClock waited")
	}
}

type fakeWarm struct{ calls []string }

func (f *fakeWarm) AddEntropy(b []byte) error {
	f.calls = append(f.calls, "entropy")
	return nil
}
func (f *fakeWarm) SetClock(t time.Time) error {
	f.calls = append(f.calls, "clock:"+t.UTC().Format(time.RFC3339))
	return nil
}
func (f *fakeWarm) ReprobeDisks(sizes []int64, lax string) error {
	f.calls = append(f.calls, fmt.Sprintf("disks:%v:%s", sizes, lax))
	return nil
}
func (f *fakeWarm) SetBootID(id string) error { f.calls = append(f.calls, "bootid:"+id); return nil }

func warmConfig(t *testing.T) *guest.WarmConfig {
	w, err := guest.NewWarmConfig(guest.RunConfig{
		Version: guest.ConfigVersion,
		Image:   guest.Image{Cmd: []string{"/bin/true"}},
		Root:    guest.Root{Mode: guest.RootOverlay, Device: "/dev/vda", Scratch: "/dev/vdb"},
	}, time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// Entropy goes in first, then the clock, the disks' caches and the boot
// id; a config without entropy changes nothing.
func TestApplyWarm(t *testing.T) {
	w := warmConfig(t)
	f := &fakeWarm{}
	w.DiskBytes = []int64{1 << 30, 16 << 30}
	if err := applyWarm(w, "vda", f, func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	want := "entropy clock:2030-01-02T03:04:05Z disks:[1073741824 17179869184]:vda bootid:" + w.BootID
	if got := strings.Join(f.calls, " "); got != want {
		t.Errorf("calls = %s, want %s", got, want)
	}
	w.Entropy = w.Entropy[:4]
	f = &fakeWarm{}
	if err := applyWarm(w, "vda", f, func(string, ...any) {}); !errors.Is(err, guest.ErrInvalidConfig) || len(f.calls) != 0 {
		t.Errorf("short entropy: %v, calls %v", err, f.calls)
	}
}

// The supervisor takes one warm config, and only while init waits.
func TestSupervisorWarm(t *testing.T) {
	s := newSupervisor(&Init{})
	w := warmConfig(t)
	cfg, err := w.RunConfig()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Warm(w, cfg); err == nil {
		t.Error("a booting init took a warm config")
	}
	s.state = guest.StateWaiting
	if st := s.Status(); st.State != guest.StateWaiting {
		t.Errorf("status = %s", st.State)
	}
	if err := s.Warm(w, cfg); err != nil {
		t.Fatal(err)
	}
	if got := <-s.warmCh; got.w != w || got.cfg != cfg {
		t.Error("the config step got another config")
	}
	s.state = guest.StateWaiting
	if err := s.Warm(w, cfg); err == nil {
		t.Error("a second warm config was taken")
	}
}

// RNDADDENTROPY needs root and a random device: a regular file is refused.
func TestAddEntropy(t *testing.T) {
	prereq.Root(t, "RNDADDENTROPY needs root")
	b := make([]byte, guest.WarmEntropyBytes)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	// Fresh random bytes credited to this host's pool: harmless.
	if err := addEntropy("/dev/urandom", b); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := addEntropy(f, b); err == nil {
		t.Error("RNDADDENTROPY on a regular file succeeded")
	}
}

// The boot id file is bind-mounted read-only over the kernel's (here a
// file in a private mount namespace).
func TestBindBootID(t *testing.T) {
	prereq.Root(t, "bind-mounts in a mount namespace of its own")
	dir := t.TempDir()
	target := filepath.Join(dir, "proc-boot_id")
	if err := os.WriteFile(target, []byte("template-id\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		runtime.LockOSThread() // the thread ends with its namespace
		done <- func() error {
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				return err
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				return err
			}
			const id = "0b5f6a52-2f36-4c4a-9d33-4a8e3c1f2b7d"
			if err := bindBootID(filepath.Join(dir, "ferry", "boot_id"), target, id); err != nil {
				return err
			}
			b, err := os.ReadFile(target)
			if err != nil || string(b) != id+"\n" {
				return errors.New("boot id reads " + string(b))
			}
			if err := os.WriteFile(target, []byte("x"), 0); err == nil {
				return errors.New("the boot id is writable")
			}
			return nil
		}()
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "template-id\n" {
		t.Errorf("the bind mount leaked out of its namespace: %q", b)
	}
}

// virtioTree makes a fake virtio_blk driver directory with disks
// (device → disk name).
func virtioTree(t *testing.T, disks map[string]string) string {
	t.Helper()
	drv := t.TempDir()
	for dev, disk := range disks {
		if err := os.MkdirAll(filepath.Join(drv, dev, "block", disk), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return drv
}

// The given virtio disks are unbound, then bound again in virtio order,
// and must come back under their names; the others are left alone.
func TestRebindDisks(t *testing.T) {
	disks := map[string]string{"virtio10": "vdc", "virtio2": "vda", "virtio3": "vdb", "virtio4": "vdd"}
	drv := virtioTree(t, disks)
	var calls []string
	write := func(path, data string) error {
		calls = append(calls, filepath.Base(path)+" "+data)
		return nil
	}
	if err := rebindDisks(drv, disks, []string{"virtio10", "virtio3", "virtio2"}, write); err != nil {
		t.Fatal(err)
	}
	want := "unbind virtio2,unbind virtio3,unbind virtio10,bind virtio2,bind virtio3,bind virtio10"
	if got := strings.Join(calls, ","); got != want {
		t.Errorf("writes = %s, want %s", got, want)
	}
	// A disk that comes back under another name is an error.
	renamed := func(path, data string) error {
		if filepath.Base(path) == "bind" && data == "virtio3" {
			return os.Rename(filepath.Join(drv, "virtio3", "block", "vdb"), filepath.Join(drv, "virtio3", "block", "vdd"))
		}
		return nil
	}
	if err := rebindDisks(drv, disks, []string{"virtio3"}, renamed); err == nil || !strings.Contains(err.Error(), "virtio3 was vdb") {
		t.Errorf("renamed disk: %v", err)
	}
}

// fakeBlock is blockDevs over a table of sizes; grow makes a disk's size
// change after a number of reads (QEMU's resize arriving late).
type fakeBlock struct {
	size  map[string]int64
	ro    map[string]bool
	grow  map[string][2]int64 // disk → reads before, new size
	reads map[string]int
	calls []string
}

func (f *fakeBlock) Size(disk string) (int64, bool, error) {
	f.reads[disk]++
	if g, ok := f.grow[disk]; ok && int64(f.reads[disk]) > g[0] {
		f.size[disk] = g[1]
	}
	n, ok := f.size[disk]
	if !ok {
		return 0, false, os.ErrNotExist
	}
	return n, f.ro[disk], nil
}
func (f *fakeBlock) Flush(disk string) error {
	f.calls = append(f.calls, "flush "+disk)
	return nil
}
func (f *fakeBlock) Write(path, data string) error {
	f.calls = append(f.calls, filepath.Base(path)+" "+data)
	return nil
}

// A disk the kernel has at its real size only has its cache dropped, as
// has the lax disk when it is larger; a read-only disk of another size, a
// writable one whose size does not arrive in time, one the kernel cannot
// size and one without a size are re-probed.
func TestReprobeDisks(t *testing.T) {
	disks := map[string]string{"virtio0": "vda", "virtio1": "vdb", "virtio2": "vdc", "virtio3": "vdd", "virtio4": "vde", "virtio5": "vdf", "virtio6": "vdg"}
	drv := virtioTree(t, disks)
	const mib = 1 << 20
	b := &fakeBlock{
		size: map[string]int64{
			"vda": 64 << 30, // lax, larger: kept
			"vdb": 16 * mib, // writable, resized after 3 reads: kept
			"vdc": 64 << 30, // read-only, larger, not lax: re-probed
			"vdd": 16 * mib, // writable, never resized: re-probed
			"vde": 32 * mib, // exact: kept
			// vdf: no size: re-probed
			"vdg": 8 * mib, // no real size given: re-probed
		},
		ro:    map[string]bool{"vda": true, "vdc": true},
		grow:  map[string][2]int64{"vdb": {3, 100 * mib}},
		reads: map[string]int{},
	}
	sizes := []int64{1 << 30, 100 * mib, 1 << 30, 50 * mib, 32 * mib, 32 * mib}
	if err := reprobeDisks(drv, sizes, "vda", b); err != nil {
		t.Fatal(err)
	}
	want := "flush vda,flush vdb,flush vde," +
		"unbind virtio2,unbind virtio3,unbind virtio5,unbind virtio6,bind virtio2,bind virtio3,bind virtio5,bind virtio6"
	if got := strings.Join(b.calls, ","); got != want {
		t.Errorf("calls = %s\nwant    %s", got, want)
	}
	// Without sizes (an older host), every disk is re-probed.
	b.calls = nil
	if err := reprobeDisks(drv, nil, "vda", b); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(b.calls, ","); strings.Contains(got, "flush") || strings.Count(got, "unbind") != len(disks) {
		t.Errorf("without sizes: %s", got)
	}
}

type fakeMACs struct {
	links map[string]string // MAC → name
	set   map[string]string // name → MAC set
}

func (f *fakeMACs) MACs() (map[string]string, error) { return f.links, nil }
func (f *fakeMACs) SetMAC(name, mac string) error {
	f.set[name] = mac
	return nil
}

// A restored guest's NICs carry the template's MACs; each takes its run
// config interface's MAC, by position, before the network is configured.
func TestSetWarmMACs(t *testing.T) {
	f := &fakeMACs{links: map[string]string{guest.TemplateMAC(0): "eth0", guest.TemplateMAC(1): "eth1", "00:00:00:00:00:00": "lo"}, set: map[string]string{}}
	ifs := []guest.Interface{{Name: "eth0", MAC: "52:54:00:AA:00:01"}, {Name: "eth1", MAC: "52:54:00:aa:00:02"}}
	if err := setWarmMACs(ifs, f); err != nil {
		t.Fatal(err)
	}
	if f.set["eth0"] != "52:54:00:aa:00:01" || f.set["eth1"] != "52:54:00:aa:00:02" || len(f.set) != 2 {
		t.Errorf("MACs set: %v", f.set)
	}
	// More interfaces than the template had NICs: said, not guessed.
	f.set = map[string]string{}
	err := setWarmMACs(append(ifs, guest.Interface{MAC: "52:54:00:aa:00:03"}), f)
	if err == nil || !strings.Contains(err.Error(), guest.TemplateMAC(2)) {
		t.Errorf("a third interface without a template NIC: %v", err)
	}
	if err := setWarmMACs([]guest.Interface{{MAC: "not a mac"}}, f); err == nil {
		t.Error("a bad MAC was accepted")
	}
}
