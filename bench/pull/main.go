// Command pull benchmarks ferry's image pull against skopeo and crane on
// the same ~100 MB, 4-layer image served by Debian's docker-registry on a
// loopback port, cold (fresh destination each time), in one run, and
// reports the bytes fetched by a second pull of an image sharing base
// layers. Results go to stdout as a markdown table; see bench/README.md.
//
//	go run ./bench/pull [-rounds 5] [-dir /dev/shm/ferry-bench]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/image"
	"github.com/ferryvm/ferry/internal/paths"
	"github.com/ferryvm/ferry/internal/testimage"
)

const (
	skopeo = "/usr/bin/skopeo"
	crane  = "/usr/local/lib/ferry/tools/crane"
)

func main() {
	rounds := flag.Int("rounds", 5, "timed rounds per tool")
	dir := flag.String("dir", defaultDir(), "work directory (tmpfs recommended); destinations are created under it")
	noSync := flag.Bool("nofsync", false, "ferry: skip fsync of blobs (peers never fsync)")
	jobs := flag.Int("jobs", 4, "ferry: parallel blob fetches")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run (ferry pulls and waits) here")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(*rounds, *dir, *noSync, *jobs); err != nil {
		pprof.StopCPUProfile()
		log.Fatal(err)
	}
}

func defaultDir() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		return "/dev/shm/ferry-bench-pull"
	}
	return filepath.Join(os.TempDir(), "ferry-bench-pull")
}

func run(rounds int, dir string, noSync bool, jobs int) error {
	ctx := context.Background()
	for _, p := range []string{skopeo, crane, testimage.DockerRegistryPath} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s missing: run scripts/deps.sh", p)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	host, stop, err := testimage.StartDockerRegistry(filepath.Join(dir, "registry"))
	if err != nil {
		return err
	}
	defer stop()

	big, shared, newLayer, err := images()
	if err != nil {
		return err
	}
	for ref, img := range map[string]v1.Image{host + "/bench/big:1": big, host + "/bench/shared:1": shared} {
		r, _ := name.ParseReference(ref, name.Insecure)
		if err := remote.Write(r, img, remote.WithContext(ctx)); err != nil {
			return fmt.Errorf("push %s: %w", ref, err)
		}
	}
	size, nl := imageSize(big)
	fmt.Printf("image: %s, %d layers, %.1f MB compressed; registry: docker-registry on %s; dir: %s\n\n", host+"/bench/big:1", nl, float64(size)/1e6, host, dir)

	ref := host + "/bench/big:1"
	tools := []struct {
		name string
		pull func(dst string) error
	}{
		{"ferry", func(dst string) error { return ferryPull(ctx, dst, ref, noSync, jobs, nil) }},
		{"skopeo copy", func(dst string) error {
			return exec.Command(skopeo, "copy", "-q", "--src-tls-verify=false", "docker://"+ref, "oci:"+dst+":x").Run()
		}},
		{"crane pull --format=oci", func(dst string) error {
			return exec.Command(crane, "pull", "--insecure", "--format=oci", ref, dst).Run()
		}},
	}
	times := map[string][]time.Duration{}
	perRound := make([]map[string]time.Duration, rounds)
	for i := range rounds + 1 { // round 0 warms caches and is not counted
		for k := range tools {
			t := tools[(k+i)%len(tools)] // rotate the order each round
			dst := filepath.Join(dir, fmt.Sprintf("dst-%d-%d", i, k))
			start := time.Now()
			if err := t.pull(dst); err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			el := time.Since(start)
			if err := os.RemoveAll(dst); err != nil {
				return err
			}
			if i > 0 {
				times[t.name] = append(times[t.name], el)
				if perRound[i-1] == nil {
					perRound[i-1] = map[string]time.Duration{}
				}
				perRound[i-1][t.name] = el
			}
		}
	}
	fmt.Println("| tool | median | min | max |")
	fmt.Println("|---|---|---|---|")
	med := map[string]time.Duration{}
	for _, t := range tools {
		ts := times[t.name]
		sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
		med[t.name] = ts[len(ts)/2]
		fmt.Printf("| %s | %.3f s | %.3f s | %.3f s |\n", t.name, ts[len(ts)/2].Seconds(), ts[0].Seconds(), ts[len(ts)-1].Seconds())
	}
	faster := min(med["skopeo copy"], med["crane pull --format=oci"])
	fmt.Printf("\nferry / faster peer (medians) = %.2f (target ≤ 0.90)\n", med["ferry"].Seconds()/faster.Seconds())
	// Per round, tools ran back to back: the median of per-round ratios
	// is steadier than the ratio of medians on a busy machine.
	var ratios []float64
	for i := range rounds {
		peer := min(perRound[i]["skopeo copy"], perRound[i]["crane pull --format=oci"])
		ratios = append(ratios, perRound[i]["ferry"].Seconds()/peer.Seconds())
	}
	sort.Float64s(ratios)
	fmt.Printf("ferry / faster peer (median of per-round ratios) = %.2f; per round sorted: %.2f\n", ratios[len(ratios)/2], ratios)

	// Dedupe: pull big, then shared (3 layers in common, 1 new).
	dst := filepath.Join(dir, "dedupe")
	var second *image.PullResult
	if err := ferryPull(ctx, dst, ref, noSync, jobs, func(s *image.Store) error {
		var err error
		second, err = s.Pull(ctx, host+"/bench/shared:1")
		return err
	}); err != nil {
		return err
	}
	total, _ := imageSize(shared)
	fmt.Printf("second pull of an image sharing 3 of 4 layers: fetched %.1f MB of %.1f MB (new layer %.1f MB); %d blobs fetched, %d already cached\n",
		float64(second.BytesFetched)/1e6, float64(total)/1e6, float64(newLayer)/1e6, second.BlobsFetched, second.BlobsExisting)
	return nil
}

// ferryPull pulls ref into a fresh root at dst, then runs then (if any).
func ferryPull(ctx context.Context, dst, ref string, noSync bool, jobs int, then func(*image.Store) error) error {
	if err := os.MkdirAll(dst, 0o750); err != nil {
		return err
	}
	root := paths.Root(dst)
	db, err := bbolt.Open(root.MetaDB(), 0o600, nil)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	opts := []image.Option{image.WithJobs(jobs)}
	if noSync {
		opts = append(opts, image.WithoutFsync())
	}
	s, err := image.Open(ctx, root, db, opts...)
	if err != nil {
		return err
	}
	if _, err := s.Pull(ctx, ref); err != nil {
		return err
	}
	if then != nil {
		return then(s)
	}
	return nil
}

// images builds the bench image and one sharing its first three layers.
func images() (big, shared v1.Image, newLayer int64, err error) {
	if big, err = testimage.Big(1); err != nil {
		return
	}
	layers, err := big.Layers()
	if err != nil {
		return
	}
	extra, err := testimage.Sized(2, 1, 33<<20)
	if err != nil {
		return
	}
	el, err := extra.Layers()
	if err != nil {
		return
	}
	base, err := testimage.Image(v1.Config{Cmd: []string{"/bin/true"}}, v1.Platform{}, layers[:3]...)
	if err != nil {
		return
	}
	if shared, err = mutate.AppendLayers(base, el[0]); err != nil {
		return
	}
	newLayer, err = el[0].Size()
	return
}

func imageSize(img v1.Image) (int64, int) {
	m, err := img.Manifest()
	if err != nil {
		return 0, 0
	}
	n := m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, len(m.Layers)
}
