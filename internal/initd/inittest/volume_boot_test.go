package inittest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
	"github.com/ferryvm/ferry/internal/volume"
)

// volumeScript writes a marker into every volume mounted read-write,
// reads back what is there, and reports the sizes of the filesystems.
const volumeScript = `#!/bin/sh
for d in /enc /plain /snap; do
  [ -d $d ] || continue
  echo "$d had=$(cat $d/marker 2>/dev/null | head -c 24)"
  if touch $d/.probe 2>/dev/null; then
    rm $d/.probe
    i=0; while [ $i -lt 2000 ]; do echo FERRY-VOLUME-MARKER-0123456789; i=$((i+1)); done > $d/marker
    chown 1000:1000 $d/marker
    echo "$d wrote"
  else
    echo "$d read-only"
  fi
  echo "$d kb=$(df -P -k $d | tail -1 | awk '{print $2}') fs=$(grep " $d " /proc/mounts | cut -d' ' -f1,3)"
done
sync
`

// TestBootVolumes boots real ferry-init with volumes made by
// internal/volume (cryptsetup's LUKS2 header, sparse files):
//
//  1. a new encrypted and a new plain volume are formatted by init and
//     written; the marker the guest wrote is nowhere in the encrypted
//     volume's file on the host, and is in the plain one's (so the check
//     can fail), whose ext4 e2fsck finds clean;
//  2. after extend and a snapshot, a second boot finds the markers again,
//     the filesystems grown, the plain volume mounted read-only refusing
//     writes (its file unchanged), and a volume made from the snapshot
//     holding the same bytes;
//  3. a wrong key is refused with one line and nothing written.
func TestBootVolumes(t *testing.T) {
	t.Parallel()
	e := Setup(t)
	prereq.Tool(t, "cryptsetup")
	ctx := context.Background()
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := volume.Open(ctx, filepath.Join(dir, "volumes"), db)
	if err != nil {
		t.Fatal(err)
	}
	plain := false
	enc, err := st.Create(ctx, volume.CreateRequest{App: "a", Name: "enc", Size: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	pl, err := st.Create(ctx, volume.CreateRequest{App: "a", Name: "plain", Size: 64 << 20, Encrypted: &plain})
	if err != nil {
		t.Fatal(err)
	}
	base := e.Rootfs(t, map[string]string{"/entry.sh": volumeScript})

	type vol struct {
		ref, target string
		ro          bool
	}
	boot := func(vols []vol, key []byte) (string, *guest.ExitStatus) {
		t.Helper()
		cfg := baseConfig("/entry.sh")
		var disks []string
		var ro []bool
		for i, v := range vols {
			a, err := st.Attach(ctx, "a", v.ref, "m", v.ro)
			if err != nil {
				t.Fatal(err)
			}
			m := guest.Mount{Source: "/dev/vd" + string(rune('c'+i)), Target: v.target, ReadOnly: v.ro, Name: a.Volume.Name, Format: true, Grow: true}
			if a.Key != nil {
				k := a.Key
				if key != nil {
					k = key
				}
				m.Encryption = &guest.Encryption{Type: guest.EncryptionLUKS2, Key: base64.StdEncoding.EncodeToString(k)}
			}
			cfg.Mounts = append(cfg.Mounts, m)
			disks = append(disks, a.Path)
			ro = append(ro, v.ro)
		}
		b := e.Start(t, cfg, Disks{Base: base, Scratch: Scratch(t, 64), Extra: disks}, Options{ExtraReadOnly: ro})
		res, err := b.Wait()
		if err != nil {
			t.Fatalf("qemu: %v\n%s", err, res.Console)
		}
		if _, err := st.Release(ctx, "m"); err != nil {
			t.Fatal(err)
		}
		ex, ok := ConsoleExit(res.Console)
		if !ok {
			t.Fatalf("no exit line:\n%s", res.Console)
		}
		return res.Console, &ex
	}
	mustRun := func(console string, ex *guest.ExitStatus) string {
		t.Helper()
		if ex.Code != 0 || ex.Failure != nil {
			t.Fatalf("exit %+v\n%s", ex, console)
		}
		return console
	}

	first := mustRun(boot([]vol{{"enc", "/enc", false}, {"plain", "/plain", false}}, nil))
	for _, want := range []string{"/enc wrote", "/plain wrote", "formatted new volume enc", "formatted new volume plain", "fs=/dev/mapper/ferry-vol0 ext4", "fs=/dev/vdd ext4"} {
		if !strings.Contains(first, want) {
			t.Errorf("first boot: console lacks %q:\n%s", want, first)
		}
	}
	marker := []byte("FERRY-VOLUME-MARKER-0123456789")
	if b, _ := os.ReadFile(enc.Path); bytes.Contains(b, marker) {
		t.Error("the guest's marker is in the encrypted volume's file on the host: not encrypted")
	}
	if b, _ := os.ReadFile(pl.Path); !bytes.Contains(b, marker) {
		t.Error("the guest's marker is not in the plain volume's file: the encryption check proves nothing")
	}
	if out, err := Fsck(pl.Path); err != nil {
		t.Errorf("plain volume not clean after power-off: %v\n%s", err, out)
	}
	kb1 := kbOf(t, first, "/enc")

	if _, _, err := st.Extend(ctx, "a", "enc", 128<<20); err != nil {
		t.Fatal(err)
	}
	snap, err := st.CreateSnapshot(ctx, "a", "enc")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create(ctx, volume.CreateRequest{App: "a", Name: "restored", Snapshot: snap.ID}); err != nil {
		t.Fatal(err)
	}
	plainSum := sha256.Sum256(must(os.ReadFile(pl.Path)))
	second := mustRun(boot([]vol{{"enc", "/enc", false}, {"plain", "/plain", true}, {"restored", "/snap", false}}, nil))
	for _, want := range []string{"/enc had=FERRY-VOLUME-MARKER-01", "/plain had=FERRY-VOLUME-MARKER-01", "/plain read-only",
		"/snap had=FERRY-VOLUME-MARKER-01", "grew volume enc"} {
		if !strings.Contains(second, want) {
			t.Errorf("second boot: console lacks %q:\n%s", want, second)
		}
	}
	if strings.Contains(second, "formatted new volume") {
		t.Errorf("second boot formatted a volume again:\n%s", second)
	}
	if kb2 := kbOf(t, second, "/enc"); kb2 < kb1+50<<10 {
		t.Errorf("extended volume: %d KiB after, %d before: the filesystem did not grow", kb2, kb1)
	}
	if sha256.Sum256(must(os.ReadFile(pl.Path))) != plainSum {
		t.Error("the read-only volume's file changed")
	}

	encSum := sha256.Sum256(must(os.ReadFile(enc.Path)))
	console, ex := boot([]vol{{"enc", "/enc", false}}, bytes.Repeat([]byte{7}, 32))
	if ex.Failure == nil || ex.Failure.Reason != guest.ReasonMount || !strings.Contains(ex.Failure.Message, "wrong key") {
		t.Errorf("wrong key: %+v\n%s", ex, console)
	}
	if sha256.Sum256(must(os.ReadFile(enc.Path))) != encSum {
		t.Error("a boot with the wrong key changed the volume")
	}
}

func kbOf(t *testing.T, console, dir string) int {
	t.Helper()
	m := regexp.MustCompile(regexp.QuoteMeta(dir) + ` kb=(\d+)`).FindStringSubmatch(console)
	if m == nil {
		t.Fatalf("no size of %s on the console:\n%s", dir, console)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
