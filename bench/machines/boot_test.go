package machines

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/rootfs"
	"github.com/ferryvm/ferry/internal/rootfs/ext4"
	"github.com/ferryvm/ferry/internal/testimage"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
	"github.com/ferryvm/ferry/internal/testutil/prereq/vmprereq"
	"github.com/ferryvm/ferry/internal/vmm"
	"github.com/ferryvm/ferry/internal/vmm/qemu"
)

// firstOutput is a writer that notes when want first appears.
type firstOutput struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	at   time.Time
	seen chan struct{}
}

func newFirstOutput(want string) *firstOutput {
	return &firstOutput{want: want, seen: make(chan struct{})}
}

func (f *firstOutput) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buf.Write(p)
	if f.at.IsZero() && strings.Contains(f.buf.String(), f.want) {
		f.at = time.Now()
		close(f.seen)
	}
	return len(p), nil
}

// runToOutput is `ferry run --rm IMG echo hi` through the API: create and
// start, follow the console until "hi", wait for the exit, destroy.
func runToOutput(b testing.TB, c *api.Client, img string) time.Duration {
	ctx := context.Background()
	start := time.Now()
	m, err := c.CreateMachine(ctx, "bench", types.CreateRequest{Config: types.Config{Image: img, Init: types.Init{Cmd: []string{"echo", "hi"}}}})
	if err != nil {
		b.Fatal(err)
	}
	out := newFirstOutput("hi\n")
	if err := c.MachineLogs(ctx, "bench", m.ID, api.LogsOptions{Follow: true}, out); err != nil {
		b.Fatal(err)
	}
	if out.at.IsZero() {
		b.Fatalf("no output; console: %q", out.buf.String())
	}
	if err := c.DestroyMachine(ctx, "bench", m.ID, true); err != nil {
		b.Fatal(err)
	}
	return out.at.Sub(start)
}

// bareSetup runs one machine without destroying it and copies its initrd
// and a fresh scratch disk into dir, and returns the plan for bare boots of
// the same thing: the recorded spec (vmm.json: what the daemon's start ran)
// with its paths moved to dir, planned again by a QEMU driver on the
// recorded accelerator, its NIC a TAP of the daemon's network namespace
// that QEMU opens by name, run inside that namespace. What the bare boot
// leaves out is ferry: the API, the machine record, disks and network
// prepared, the initramfs written and the supervision.
func bareSetup(b testing.TB, c *api.Client, img, root, dir string) *vmm.Plan {
	ctx := context.Background()
	m, err := c.CreateMachine(ctx, "bench", types.CreateRequest{Config: types.Config{Image: img, Init: types.Init{Cmd: []string{"echo", "hi"}}}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.WaitMachine(ctx, "bench", m.ID, types.StateStopped, time.Minute); err != nil {
		b.Fatal(err)
	}
	mdir := filepath.Join(root, "machines", m.ID)
	rec, err := vmm.ReadRecord(mdir)
	if err != nil {
		b.Fatal(err)
	}
	if i := slices.Index(rec.Plan.Args, "-accel"); i < 0 || !strings.HasPrefix(rec.Plan.Args[i+1], rec.Plan.Accel) {
		b.Fatalf("vmm.json records accelerator %q but argv %v", rec.Plan.Accel, rec.Plan.Args)
	}
	// The initrd; each bare boot gets a fresh scratch disk as every new
	// machine does.
	if out, err := exec.Command("cp", filepath.Join(mdir, "initrd.cpio"), filepath.Join(dir, "initrd.cpio")).CombinedOutput(); err != nil {
		b.Fatalf("cp initrd: %v %s", err, out)
	}
	if err := c.DestroyMachine(ctx, "bench", m.ID, true); err != nil {
		b.Fatal(err)
	}
	spec := rec.Spec
	spec.ID, spec.Dir, spec.VMMLog = "bare", dir, ""
	spec.Initrd, spec.ConsoleLog, spec.Control = filepath.Join(dir, "initrd.cpio"), filepath.Join(dir, "console.log"), vmm.MachineControl(dir)
	for i, d := range spec.Drives {
		if d.ID == "scratch" {
			spec.Drives[i].Path = filepath.Join(dir, "scratch.ext4")
		}
	}
	ns := filepath.Base(filepath.Dir(root)) // the daemon's namespace (startDaemonRoot)
	if len(spec.NICs) > 0 {
		if out, err := exec.Command("ip", "-n", ns, "tuntap", "add", "dev", "fb-bare", "mode", "tap", "vnet_hdr").CombinedOutput(); err != nil {
			b.Fatalf("tap in %s: %v %s", ns, err, out)
		}
		if out, err := exec.Command("ip", "-n", ns, "link", "set", "fb-bare", "up").CombinedOutput(); err != nil {
			b.Fatalf("tap up: %v %s", err, out)
		}
		spec.NICs = []vmm.NIC{{ID: "eth0", Tap: "fb-bare", MAC: spec.NICs[0].MAC}}
	}
	spec.NetNS = ""
	plan, err := qemu.New(qemu.WithAccel(rec.Plan.Accel), qemu.WithoutSandbox()).Plan(spec)
	if err != nil {
		b.Fatal(err)
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		b.Fatal(err)
	}
	plan.Path, plan.Args = ip, append([]string{ip, "netns", "exec", ns}, plan.Args...)
	return plan
}

// bareBoot runs plan and returns the time to "hi" on its console.
func bareBoot(b testing.TB, plan *vmm.Plan, dir string) time.Duration {
	console := filepath.Join(dir, "console.log")
	os.Remove(console)
	scratch := filepath.Join(dir, "scratch.ext4")
	os.Remove(scratch)
	if err := ext4.MakeScratch(context.Background(), scratch, rootfs.DefaultScratchSize); err != nil {
		b.Fatalf("fresh scratch: %v", err)
	}
	os.Remove(filepath.Join(dir, "control.sock"))
	start := time.Now()
	p, err := vmm.Run(context.Background(), plan)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = p.Kill(); <-p.Done() }()
	// Something must read the control channel: with nothing on the host
	// end, init's writes to it stall the boot by ~0.7 s (measured), which
	// would flatter ferry. The bare side drains it and says nothing.
	{
		go func() {
			for time.Since(start) < 10*time.Second {
				if c, err := net.Dial("unix", filepath.Join(dir, "control.sock")); err == nil {
					defer c.Close()
					_, _ = io.Copy(io.Discard, c)
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	deadline := start.Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if data, _ := os.ReadFile(console); bytes.Contains(data, []byte("hi\n")) || bytes.Contains(data, []byte("hi\r\n")) {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "vmm.log"))
	b.Fatalf("bare boot: no output in 60s; vmm log: %s", log)
	return 0
}

func median(ds []time.Duration) time.Duration {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

// TestRunOverhead times `ferry run --rm IMG echo hi` (cached image) against
// a bare QEMU boot of the same kernel, initrd and disks to the same first
// output, alternating, and logs the medians and their ratio (target ≤ 1.10).
// Run with: FERRY_BENCH=1 go test -run RunOverhead -v ./bench/machines/
func TestRunOverhead(t *testing.T) {
	prereq.OptIn(t, "FERRY_BENCH", "the boot benchmark")
	vmprereq.Require(t)
	c, root := startDaemonRoot(t)
	img, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	load(t, c, "busybox:bench", img)
	dir := t.TempDir()
	plan := bareSetup(t, c, "busybox:bench", root, dir)
	var ferry, bare []time.Duration
	n := 5
	if v, err := strconv.Atoi(os.Getenv("FERRY_BENCH_N")); err == nil && v > 0 {
		n = v
	}
	for range n {
		ferry = append(ferry, runToOutput(t, c, "busybox:bench"))
		bare = append(bare, bareBoot(t, plan, dir))
	}
	fm, bm := median(ferry), median(bare)
	t.Logf("ferry run --rm to first output: median %v %v", fm, ferry)
	t.Logf("bare qemu to first output:      median %v %v", bm, bare)
	t.Logf("ratio %.3f (target <= 1.10)", float64(fm)/float64(bm))
}

// TestRunToVMMStarted times create → VMM started (everything ferry does
// before the guest boots) for a ~2 MB and a ~180 MB image, both cached with
// their bases built (target ≤ 100 ms, flat in image size).
func TestRunToVMMStarted(t *testing.T) {
	prereq.OptIn(t, "FERRY_BENCH", "the boot benchmark")
	vmprereq.Require(t)
	c, _ := startDaemonRoot(t)
	small, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	load(t, c, "small:bench", small)
	big, err := testimage.Extend(small, 7, 180<<20)
	if err != nil {
		t.Fatal(err)
	}
	load(t, c, "big:bench", big)
	ctx := context.Background()
	for _, img := range []string{"small:bench", "big:bench"} {
		// The first machine builds the base; time the next ones.
		var ds []time.Duration
		for i := range 6 {
			start := time.Now()
			m, err := c.CreateMachine(ctx, "bench", types.CreateRequest{Config: types.Config{Image: img, Init: types.Init{Cmd: []string{"sleep", "30"}}}})
			if err != nil {
				t.Fatal(err)
			}
			d := time.Since(start)
			if i > 0 {
				ds = append(ds, d)
			}
			if err := c.DestroyMachine(ctx, "bench", m.ID, true); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("%s: create → VMM started median %v %v", img, median(ds), ds)
	}
}
