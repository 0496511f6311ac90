package machines

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/testimage"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
	"github.com/ferryvm/ferry/internal/testutil/prereq/vmprereq"
)

// fioJobs are the workloads, the same in the guest and on the host.
var fioJobs = []struct{ name, rw, bs string }{
	{"seq-read", "read", "1m"},
	{"seq-write", "write", "1m"},
	{"rand-read", "randread", "4k"},
	{"rand-write", "randwrite", "4k"},
}

// fioArgs runs one job on file for a few seconds, O_DIRECT, and prints
// fio's JSON.
func fioArgs(file, rw, bs string) []string {
	return []string{"--name=bench", "--filename=" + file, "--size=64m", "--rw=" + rw, "--bs=" + bs,
		"--direct=1", "--ioengine=psync", "--runtime=4", "--time_based", "--output-format=json"}
}

// TestVolumeIO runs Debian's fio inside a guest on a plain volume, an
// encrypted volume and the scratch disk, and on the host against a file on
// the data root's filesystem directly, and logs each job's throughput and
// the guest/host ratios.
// Run with: FERRY_BENCH=1 go test -run VolumeIO -v ./bench/machines/
func TestVolumeIO(t *testing.T) {
	prereq.OptIn(t, "FERRY_BENCH", "the volume I/O benchmark")
	vmprereq.Require(t)
	fio := prereq.Tool(t, "fio")
	prereq.Tool(t, "cryptsetup")
	c, root := startDaemonRoot(t)
	load(t, c, "fio:bench", fioImage(t, fio))
	ctx := context.Background()
	no := false
	for _, v := range []api.CreateVolumeRequest{{Name: "plain", SizeBytes: 256 << 20, Encrypted: &no}, {Name: "enc", SizeBytes: 256 << 20}} {
		if _, err := c.CreateVolume(ctx, "default", v); err != nil {
			t.Fatal(err)
		}
	}
	var script strings.Builder
	for _, target := range []string{"/plain", "/enc", "/scratch"} {
		for _, j := range fioJobs {
			fmt.Fprintf(&script, "echo FIO %s %s $(fio %s | tr -d '\\n'); ", target, j.name, strings.Join(fioArgs(target+"/f", j.rw, j.bs), " "))
		}
	}
	script.WriteString("rm -f /scratch/f")
	m, err := c.CreateMachine(ctx, "default", types.CreateRequest{Config: types.Config{Image: "fio:bench",
		Guest:  types.Guest{CPUs: 2, MemoryMB: 512},
		Init:   types.Init{Cmd: []string{"sh", "-c", "mkdir -p /scratch && " + script.String()}},
		Mounts: []types.Mount{{Volume: "plain", Path: "/plain"}, {Volume: "enc", Path: "/enc"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitMachine(ctx, "default", m.ID, types.StateStopped, 20*time.Minute); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	if err := c.MachineLogs(ctx, "default", m.ID, api.LogsOptions{}, &logs); err != nil {
		t.Fatal(err)
	}
	guest := map[string]fioResult{}
	for _, line := range strings.Split(logs.String(), "\n") {
		f := strings.SplitN(strings.TrimSpace(line), " ", 4)
		if len(f) == 4 && f[0] == "FIO" {
			guest[f[1]+" "+f[2]] = parseFio(t, f[3])
		}
	}
	// The host: the same jobs on a file beside the volumes.
	hostFile := filepath.Join(root, "volumes", "fio-host.bench")
	defer os.Remove(hostFile)
	t.Logf("load before the host runs: %s", loadavg())
	t.Logf("%-10s %-14s %12s %10s %8s", "job", "target", "MiB/s", "IOPS", "vs host")
	for _, j := range fioJobs {
		out, err := exec.Command(fio, fioArgs(hostFile, j.rw, j.bs)...).Output()
		if err != nil {
			t.Fatalf("host fio %s: %v", j.name, err)
		}
		h := parseFio(t, string(out))
		t.Logf("%-10s %-14s %12.1f %10.0f %8s", j.name, "host file", h.mibs, h.iops, "1")
		for _, target := range []string{"/plain", "/enc", "/scratch"} {
			g, ok := guest[target+" "+j.name]
			if !ok {
				t.Fatalf("no guest result for %s %s; logs:\n%s", target, j.name, logs.String())
			}
			t.Logf("%-10s %-14s %12.1f %10.0f %8.3f", j.name, "guest "+target, g.mibs, g.iops, g.mibs/h.mibs)
		}
	}
	t.Logf("load after: %s", loadavg())
}

type fioResult struct{ mibs, iops float64 }

func parseFio(t *testing.T, s string) fioResult {
	t.Helper()
	var out struct {
		Jobs []struct {
			Read, Write struct {
				BW   float64 `json:"bw"` // KiB/s
				IOPS float64 `json:"iops"`
			}
		} `json:"jobs"`
	}
	if i := strings.IndexByte(s, '{'); i > 0 {
		s = s[i:]
	}
	if err := json.Unmarshal([]byte(s), &out); err != nil || len(out.Jobs) == 0 {
		t.Fatalf("fio output: %v: %.200s", err, s)
	}
	j := out.Jobs[0]
	return fioResult{mibs: (j.Read.BW + j.Write.BW) / 1024, iops: j.Read.IOPS + j.Write.IOPS}
}

// fioImage is busybox with the host's (Debian's) fio and the libraries it
// links, at their paths.
func fioImage(t *testing.T, fio string) v1.Image {
	t.Helper()
	out, err := exec.Command("ldd", fio).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", fio, err)
	}
	paths := []string{fio}
	for _, line := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "/") {
				paths = append(paths, f)
			}
		}
	}
	// Debian's /lib and /lib64 are links into /usr: each file goes to its
	// directory's real path under the name ldd printed (the soname), and
	// the image gets the same links.
	files := []testimage.File{{Path: "lib", Type: tar.TypeSymlink, Linkname: "usr/lib"}, {Path: "lib64", Type: tar.TypeSymlink, Linkname: "usr/lib64"}}
	dirs := map[string]bool{}
	for _, p := range paths {
		d, err := filepath.EvalSymlinks(filepath.Dir(p))
		if err != nil {
			t.Fatal(err)
		}
		real := filepath.Join(d, filepath.Base(p))
		if dirs[real] {
			continue
		}
		dirs[real] = true
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var parents []string
		for d := filepath.Dir(real); d != "/" && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			files = append(files, testimage.File{Path: strings.TrimPrefix(d, "/"), Type: tar.TypeDir})
		}
		files = append(files, testimage.File{Path: strings.TrimPrefix(real, "/"), Mode: 0o755, Data: data})
	}
	base, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	layer, err := testimage.Layer(files, testimage.Gzip)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.Config
	cfg.Env = append(cfg.Env, "LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu/ceph", "PATH=/usr/bin:/bin:/usr/sbin:/sbin")
	img, err = mutate.Config(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
