// Package volumes benchmarks internal/volume on the host: volume creation
// (flat in size: sparse files, a LUKS2 header) and snapshots (reflink on
// XFS against a sparse copy on ext4, same data). The guest-side I/O
// benchmark is bench/machines TestVolumeIO.
package volumes

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
	"github.com/ferryvm/ferry/internal/volume"
)

var ctx = context.Background()

func openStore(t *testing.T, dir string) *volume.Store {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, "meta.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st, err := volume.Open(ctx, filepath.Join(dir, "volumes"), db, volume.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestCreateFlat times creating plain and encrypted volumes of 64 MiB to
// 32 GiB (median of 3 each), against the peer: a sparse file and Debian's
// cryptsetup luksFormat of the same layout, by hand.
// Run with: FERRY_BENCH=1 go test -run CreateFlat -v ./bench/volumes/
func TestCreateFlat(t *testing.T) {
	prereq.OptIn(t, "FERRY_BENCH", "the volume create benchmark")
	cryptsetupPath = prereq.Tool(t, "cryptsetup")
	st := openStore(t, t.TempDir())
	t.Logf("load: %s", loadavg())
	for _, enc := range []bool{false, true} {
		for _, size := range []int64{64 << 20, 1 << 30, 32 << 30} {
			var ds []time.Duration
			for i := range 3 {
				start := time.Now()
				v, err := st.Create(ctx, volume.CreateRequest{App: "bench", Name: strings.ReplaceAll(volume.FormatSize(size), "i", "") + "-" + string(rune('a'+i)) + map[bool]string{true: "-enc", false: ""}[enc], Size: size, Encrypted: &enc})
				if err != nil {
					t.Fatal(err)
				}
				ds = append(ds, time.Since(start))
				if err := st.Remove(ctx, "bench", v.ID); err != nil {
					t.Fatal(err)
				}
			}
			var peer []time.Duration
			for range 3 {
				peer = append(peer, byHand(t, size, enc))
			}
			t.Logf("create encrypted=%-5v %8s: ferry median %v %v; by hand %v: %.2fx", enc, volume.FormatSize(size), median(ds), ds, median(peer), float64(median(ds))/float64(median(peer)))
		}
	}
}

var cryptsetupPath string

// byHand makes what a volume is without ferry: a sparse file of size
// (fsynced) and, when enc, its LUKS2 header by cryptsetup.
func byHand(t *testing.T, size int64, enc bool) time.Duration {
	t.Helper()
	p := filepath.Join(t.TempDir(), "data")
	start := time.Now()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if enc {
		cmd := exec.Command(cryptsetupPath, append(append([]string{"luksFormat", "--batch-mode", "--key-file", "-"}, volume.Layout...), p)...)
		cmd.Stdin = strings.NewReader("0123456789abcdef0123456789abcdef")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("cryptsetup: %v %s", err, out)
		}
	}
	return time.Since(start)
}

// TestSnapshot times a snapshot of a volume holding 512 MiB of data, and a
// volume made from it, on XFS with reflink and on ext4 (a sparse copy),
// both loop-mounted files of the same size.
// Run with: FERRY_BENCH=1 go test -run Snapshot -v ./bench/volumes/
func TestSnapshot(t *testing.T) {
	prereq.OptIn(t, "FERRY_BENCH", "the volume snapshot benchmark")
	prereq.Loop(t)
	for _, fs := range []struct{ name, mkfs string }{{"xfs (reflink)", "mkfs.xfs"}, {"ext4 (sparse copy)", "mkfs.ext4"}} {
		mkfs := prereq.Tool(t, fs.mkfs)
		dir := t.TempDir()
		img := filepath.Join(dir, "fs.img")
		if err := os.WriteFile(img, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(img, 4<<30); err != nil {
			t.Fatal(err)
		}
		args := []string{"-q", img}
		if fs.mkfs == "mkfs.xfs" {
			args = []string{"-q", "-m", "reflink=1", img}
		}
		if out, err := exec.Command(mkfs, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v %s", fs.mkfs, err, out)
		}
		mnt := filepath.Join(dir, "mnt")
		if err := os.Mkdir(mnt, 0o700); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
			t.Fatalf("mount: %v %s", err, out)
		}
		t.Cleanup(func() { _ = exec.Command("umount", mnt).Run() })
		st := openStore(t, mnt)
		no := false
		v, err := st.Create(ctx, volume.CreateRequest{App: "bench", Name: "src", Size: 1 << 30, Encrypted: &no})
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(v.Path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(f, rand.Reader, 512<<20); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		start := time.Now()
		snap, err := st.CreateSnapshot(ctx, "bench", "src")
		if err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		start = time.Now()
		if _, err := st.Create(ctx, volume.CreateRequest{App: "bench", Name: "copy", Snapshot: snap.ID}); err != nil {
			t.Fatal(err)
		}
		fromSnap := time.Since(start)
		// The peer: cp of the same file, the way the filesystem allows.
		cpArgs := []string{"--sparse=always"}
		if snap.Method == "reflink" {
			cpArgs = []string{"--reflink=always"}
		}
		start = time.Now()
		if out, err := exec.Command("cp", append(cpArgs, v.Path, filepath.Join(mnt, "peer"))...).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
		if out, err := exec.Command("sync", "-f", filepath.Join(mnt, "peer")).CombinedOutput(); err != nil {
			t.Fatalf("sync: %v %s", err, out)
		}
		peer := time.Since(start)
		t.Logf("%-20s snapshot of 512 MiB written: %v (%s); volume from it: %v; cp %s + sync: %v (%.2fx) (load %s)",
			fs.name, took, snap.Method, fromSnap, cpArgs[0], peer, float64(took)/float64(peer), loadavg())
	}
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
