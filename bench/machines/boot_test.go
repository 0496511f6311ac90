package machines

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/testimage"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
	"github.com/ferryvm/ferry/internal/testutil/prereq/vmprereq"
	"github.com/ferryvm/ferry/internal/vmm"
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

// vmmRecord is what the daemon writes to a machine's vmm.json.
type vmmRecord struct {
	Spec vmm.Spec `json:"spec"`
	Plan vmm.Plan `json:"plan"`
}

// bareSetup runs one machine without destroying it and copies its initrd,
// scratch disk and QEMU argv into dir, for bare boots of the same thing.
func bareSetup(b testing.TB, c *api.Client, img, root, dir string) []string {
	ctx := context.Background()
	m, err := c.CreateMachine(ctx, "bench", types.CreateRequest{Config: types.Config{Image: img, Init: types.Init{Cmd: []string{"echo", "hi"}}}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.WaitMachine(ctx, "bench", m.ID, types.StateStopped, time.Minute); err != nil {
		b.Fatal(err)
	}
	mdir := filepath.Join(root, "machines", m.ID)
	raw, err := os.ReadFile(filepath.Join(mdir, "vmm.json"))
	if err != nil {
		b.Fatal(err)
	}
	var rec vmmRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		b.Fatal(err)
	}
	// The initrd, and a never-mounted scratch disk like the one every new
	// machine gets (the rootfs template), so both sides boot on a fresh
	// scratch.
	tmpl, _ := filepath.Glob(filepath.Join(root, "rootfs", "templates", "scratch-*.ext4"))
	if len(tmpl) == 0 {
		b.Fatal("no scratch template under the rootfs dir")
	}
	for src, dst := range map[string]string{filepath.Join(mdir, "initrd.cpio"): "initrd.cpio", tmpl[0]: "scratch.fresh"} {
		if out, err := exec.Command("cp", "--sparse=always", src, filepath.Join(dir, dst)).CombinedOutput(); err != nil {
			b.Fatalf("cp %s: %v %s", src, err, out)
		}
	}
	// The same argv, with paths moved to dir; the NIC's TAP (an inherited
	// descriptor of the daemon's) becomes one QEMU creates itself, in the
	// daemon's network namespace (bareBoot runs QEMU there).
	ns := filepath.Base(filepath.Dir(root))
	args := []string{"ip", "netns", "exec", ns}
	for _, a := range rec.Plan.Args {
		if strings.HasPrefix(a, "tap,") {
			a = "tap,id=eth0,ifname=fb-bare,script=no,downscript=no"
		}
		args = append(args, strings.ReplaceAll(a, mdir, dir))
	}
	if err := c.DestroyMachine(ctx, "bench", m.ID, true); err != nil {
		b.Fatal(err)
	}
	return args
}

// bareBoot runs QEMU with args and returns the time to "hi" on its console.
func bareBoot(b testing.TB, args []string, dir string) time.Duration {
	console := filepath.Join(dir, "console.log")
	os.Remove(console)
	if out, err := exec.Command("cp", "--sparse=always", filepath.Join(dir, "scratch.fresh"), filepath.Join(dir, "scratch.ext4")).CombinedOutput(); err != nil {
		b.Fatalf("fresh scratch: %v %s", err, out)
	}
	os.Remove(filepath.Join(dir, "control.sock"))
	start := time.Now()
	cmd := exec.Command(args[0], args[1:]...)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	deadline := start.Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if data, _ := os.ReadFile(console); bytes.Contains(data, []byte("hi\n")) || bytes.Contains(data, []byte("hi\r\n")) {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Fatal("bare boot: no output in 60s")
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
	args := bareSetup(t, c, "busybox:bench", root, dir)
	var ferry, bare []time.Duration
	n := 5
	if v, err := strconv.Atoi(os.Getenv("FERRY_BENCH_N")); err == nil && v > 0 {
		n = v
	}
	for range n {
		ferry = append(ferry, runToOutput(t, c, "busybox:bench"))
		bare = append(bare, bareBoot(t, args, dir))
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
