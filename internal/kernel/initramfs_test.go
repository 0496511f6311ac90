package kernel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/errdefs"
)

func TestSharedEntries(t *testing.T) {
	s := Shared{
		Init:       "/usr/local/lib/ferry/ferry-init",
		ModulesDir: "/x/lib/modules/6.1.0-9-cloud-amd64",
		Modules:    []string{"kernel/drivers/virtio/virtio.ko", "kernel/fs/overlayfs/overlay.ko"},
	}
	var got []string
	for _, e := range s.Entries() {
		got = append(got, e.String())
	}
	want := []string{
		"drwxr-xr-x 0:0 /dev",
		"Dcrw------- 0:0 /dev/console",
		"drwxr-xr-x 0:0 /proc",
		"drwxr-xr-x 0:0 /sys",
		"drwxr-xr-x 0:0 /run",
		"drwxr-xr-x 0:0 /tmp",
		"-rwxr-xr-x 0:0 /init < /usr/local/lib/ferry/ferry-init",
		"drwxr-xr-x 0:0 /lib",
		"drwxr-xr-x 0:0 /lib/modules",
		"drwxr-xr-x 0:0 /lib/modules/6.1.0-9-cloud-amd64",
		"drwxr-xr-x 0:0 /lib/modules/6.1.0-9-cloud-amd64/kernel",
		"drwxr-xr-x 0:0 /lib/modules/6.1.0-9-cloud-amd64/kernel/drivers",
		"drwxr-xr-x 0:0 /lib/modules/6.1.0-9-cloud-amd64/kernel/drivers/virtio",
		"-rw-r--r-- 0:0 /lib/modules/6.1.0-9-cloud-amd64/kernel/drivers/virtio/virtio.ko < /x/lib/modules/6.1.0-9-cloud-amd64/kernel/drivers/virtio/virtio.ko",
		"drwxr-xr-x 0:0 /lib/modules/6.1.0-9-cloud-amd64/kernel/fs",
		"drwxr-xr-x 0:0 /lib/modules/6.1.0-9-cloud-amd64/kernel/fs/overlayfs",
		"-rw-r--r-- 0:0 /lib/modules/6.1.0-9-cloud-amd64/kernel/fs/overlayfs/overlay.ko < /x/lib/modules/6.1.0-9-cloud-amd64/kernel/fs/overlayfs/overlay.ko",
		"-rw-r--r-- 0:0 /lib/modules/ferry.order (129 bytes)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	order := string(s.Entries()[len(want)-1].Data)
	if order != "/lib/modules/6.1.0-9-cloud-amd64/kernel/drivers/virtio/virtio.ko\n/lib/modules/6.1.0-9-cloud-amd64/kernel/fs/overlayfs/overlay.ko\n" {
		t.Errorf("ferry.order = %q", order)
	}
}

func fakeInit(t testing.TB, dir, content string) string {
	t.Helper()
	p := filepath.Join(dir, "ferry-init")
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBuildSharedCachesByContent(t *testing.T) {
	ctx := context.Background()
	src, cache := t.TempDir(), t.TempDir()
	init := fakeInit(t, src, "init v1")
	p1, err := BuildShared(ctx, cache, Shared{Init: init})
	if err != nil {
		t.Fatal(err)
	}
	st1, _ := os.Stat(p1)
	p2, err := BuildShared(ctx, cache, Shared{Init: init})
	if err != nil {
		t.Fatal(err)
	}
	st2, _ := os.Stat(p2)
	if p1 != p2 || !os.SameFile(st1, st2) {
		t.Errorf("same inputs: %s then %s (rebuilt: %v)", p1, p2, !os.SameFile(st1, st2))
	}
	fakeInit(t, src, "init v2")
	p3, err := BuildShared(ctx, cache, Shared{Init: init})
	if err != nil {
		t.Fatal(err)
	}
	if p3 == p1 {
		t.Errorf("changed init reused %s", p1)
	}
	b, _ := os.ReadFile(p3)
	es, err := readCPIO(b)
	if err != nil {
		t.Fatal(err)
	}
	if init := findEntry(es, "init"); init == nil || string(init.Data) != "init v2" || init.Mode != 0o100755 {
		t.Errorf("/init = %+v", init)
	}
	if left, _ := filepath.Glob(filepath.Join(cache, ".*tmp*")); len(left) != 0 {
		t.Errorf("temporary files left: %q", left)
	}
	if _, err := BuildShared(ctx, cache, Shared{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("no init: err = %v", err)
	}
}

func findEntry(es []readEntry, name string) *readEntry {
	for i := range es {
		if es[i].Name == name {
			return &es[i]
		}
	}
	return nil
}

func TestPerMachine(t *testing.T) {
	b, err := PerMachine(map[string][]byte{
		"/ferry/run.json": []byte(`{"v":1}`),
		"/etc/extra":      []byte("x"),
	})
	if err != nil {
		t.Fatal(err)
	}
	es, err := readCPIO(b)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, modeString(e.Mode)+" "+e.Name+" "+string(e.Data))
	}
	want := "drwxr-xr-x etc |-rw------- etc/extra x|drwxr-xr-x ferry |-rw------- ferry/run.json {\"v\":1}"
	if strings.Join(got, "|") != want {
		t.Errorf("entries %q\nwant %q", strings.Join(got, "|"), want)
	}
	if len(b)%512 != 0 || len(b) > 1024 {
		t.Errorf("per-machine archive is %d bytes; want 512-aligned and small", len(b))
	}
	for _, bad := range []string{"ferry/run.json", "/", "/a/../b", "/a/"} {
		if _, err := PerMachine(map[string][]byte{bad: nil}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("path %q: err = %v, want invalid argument", bad, err)
		}
	}
}

func TestWriteInitrdConcatenates(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	shared, err := BuildShared(ctx, dir, Shared{Init: fakeInit(t, dir, "the init")})
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "initrd.cpio")
	if err := WriteInitrd(ctx, dst, shared, map[string][]byte{"/ferry/run.json": []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(dst)
	sb, _ := os.ReadFile(shared)
	if !bytes.HasPrefix(b, sb) {
		t.Fatal("initrd does not start with the shared archive")
	}
	es, err := readCPIO(b)
	if err != nil {
		t.Fatal(err)
	}
	if e := findEntry(es, "init"); e == nil || string(e.Data) != "the init" {
		t.Errorf("init from shared part: %+v", e)
	}
	if e := findEntry(es, "ferry/run.json"); e == nil || string(e.Data) != "{}" {
		t.Errorf("run.json from per-machine part: %+v", e)
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o600 {
		t.Errorf("initrd mode %v, want 0600 (run configs carry secrets)", fi.Mode())
	}
}

// BenchmarkPerMachine is the per-start cost of the run-config archive alone.
func BenchmarkPerMachine(b *testing.B) {
	cfg := bytes.Repeat([]byte("x"), 2048) // a typical run config
	b.ReportAllocs()
	var n int
	for b.Loop() {
		out, err := PerMachine(map[string][]byte{"/ferry/run.json": cfg})
		if err != nil {
			b.Fatal(err)
		}
		n = len(out)
	}
	b.ReportMetric(float64(n), "bytes")
}

func TestWriteInitrdRestartRewritesTailOnly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	shared, err := BuildShared(ctx, dir, Shared{Init: fakeInit(t, dir, "init one")})
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "initrd.cpio")
	write := func(shared, cfg string) []readEntry {
		t.Helper()
		if err := WriteInitrd(ctx, dst, shared, map[string][]byte{"/ferry/run.json": []byte(cfg)}); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(dst)
		es, err := readCPIO(b)
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	write(shared, strings.Repeat("long config ", 100))
	before, _ := os.Stat(dst)
	es := write(shared, "short")
	after, _ := os.Stat(dst)
	if !os.SameFile(before, after) {
		t.Error("restart with the same shared archive replaced the file instead of rewriting its tail")
	}
	if e := findEntry(es, "ferry/run.json"); e == nil || string(e.Data) != "short" {
		t.Errorf("run.json after restart = %+v", e)
	}
	other, err := BuildShared(ctx, t.TempDir(), Shared{Init: fakeInit(t, t.TempDir(), "init two")})
	if err != nil {
		t.Fatal(err)
	}
	es = write(other, "x")
	if e := findEntry(es, "init"); e == nil || string(e.Data) != "init two" {
		t.Errorf("new shared archive not used: init = %+v", e)
	}
}

// BenchmarkWriteInitrd is the cost of a machine's whole initrd: on first
// start a copy of a shared archive the size of ferry-init plus the
// per-machine archive; on a restart only the per-machine tail.
func BenchmarkWriteInitrd(b *testing.B) {
	for _, size := range []int{4 << 20, 16 << 20} {
		b.Run(fmt.Sprintf("shared=%dMiB", size>>20), func(b *testing.B) {
			ctx := context.Background()
			dir := b.TempDir()
			init := fakeInit(b, dir, string(bytes.Repeat([]byte{0x90}, size)))
			shared, err := BuildShared(ctx, dir, Shared{Init: init})
			if err != nil {
				b.Fatal(err)
			}
			cfg := map[string][]byte{"/ferry/run.json": bytes.Repeat([]byte("x"), 2048)}
			dst := filepath.Join(dir, "initrd.cpio")
			b.Run("first", func(b *testing.B) {
				for b.Loop() {
					os.Remove(dst)
					if err := WriteInitrd(ctx, dst, shared, cfg); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("restart", func(b *testing.B) {
				for b.Loop() {
					if err := WriteInitrd(ctx, dst, shared, cfg); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

func TestPruneShared(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, _ := BuildShared(ctx, dir, Shared{Init: fakeInit(t, t.TempDir(), "a")})
	b, _ := BuildShared(ctx, dir, Shared{Init: fakeInit(t, t.TempDir(), "b")})
	if err := PruneShared(dir, b); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old archive %s still there", a)
	}
	if _, err := os.Stat(b); err != nil {
		t.Errorf("kept archive: %v", err)
	}
}
