package volume

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/ferryvm/ferry/internal/testutil/prereq"

	"github.com/ferryvm/ferry/internal/errdefs"
)

var ctx = context.Background()

// luksDump runs cryptsetup luksDump (the oracle) on p.
func luksDump(t *testing.T, p string, args ...string) string {
	t.Helper()
	out, err := exec.Command("cryptsetup", append(append([]string{"luksDump"}, args...), p)...).CombinedOutput()
	if err != nil {
		t.Fatalf("cryptsetup luksDump %s: %v\n%s", p, err, out)
	}
	return string(out)
}

// TestCreateEncrypted: a new volume is a sparse file of the size asked
// whose LUKS2 header cryptsetup reads with ferry's pinned layout; its key
// is a 0600 file of 32 bytes that opens the header; it costs the header's
// bytes on disk whatever its size.
func TestCreateEncrypted(t *testing.T) {
	prereq.Tool(t, "cryptsetup")
	t.Parallel()
	e := newEnv(t, "")
	v := e.create(t, "data", 5<<30, nil)
	if !v.Encrypted || v.State != StateReady || v.SizeBytes != 5<<30 {
		t.Fatalf("volume %+v", v)
	}
	fi, err := os.Stat(v.Path)
	if err != nil || fi.Size() != 5<<30 {
		t.Fatalf("file %v, %v", fi, err)
	}
	if v.AllocatedBytes > HeaderSize+1<<20 {
		t.Errorf("a new 5 GiB volume occupies %d bytes, want about the %d-byte header", v.AllocatedBytes, HeaderSize)
	}
	dump := luksDump(t, v.Path)
	for _, want := range []string{"Version:       \t2", "offset: 4194304 [bytes]", "sector: 4096 [bytes]", "cipher: aes-xts-plain64",
		"PBKDF:      pbkdf2", "Iterations: 1000", "Label:         \tferry", "Keyslots area: \t4161536 [bytes]"} {
		if !strings.Contains(dump, want) {
			t.Errorf("luksDump lacks %q:\n%s", want, dump)
		}
	}
	kp := filepath.Join(e.dir, v.ID, "key")
	ki, err := os.Stat(kp)
	if err != nil || ki.Mode().Perm() != 0o600 || ki.Size() != keySize {
		t.Fatalf("key file %v %v", ki, err)
	}
	// cryptsetup itself opens the header with the key file.
	if out, err := exec.Command("cryptsetup", "luksDump", "--dump-volume-key", "--batch-mode", "--key-file", kp, v.Path).CombinedOutput(); err != nil {
		t.Fatalf("the key file does not open the header for cryptsetup: %v\n%s", err, out)
	}
	a, err := e.s.Attach(ctx, "a", "data", "m1", false)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(kp)
	if !bytes.Equal(a.Key, key) || a.Path != v.Path {
		t.Errorf("attach gave key %x path %s", a.Key, a.Path)
	}
}

// TestSameLayout: two volumes' headers differ only in what must be random
// (UUID, salts, digests, keyslot contents).
func TestSameLayout(t *testing.T) {
	prereq.Tool(t, "cryptsetup")
	t.Parallel()
	e := newEnv(t, "")
	norm := func(v Volume) string {
		var m map[string]any
		if err := json.Unmarshal([]byte(luksDump(t, v.Path, "--dump-json-metadata")), &m); err != nil {
			t.Fatal(err)
		}
		for _, sec := range []string{"keyslots", "digests"} {
			for _, x := range m[sec].(map[string]any) {
				o := x.(map[string]any)
				delete(o, "salt")
				delete(o, "digest")
				if kdf, ok := o["kdf"].(map[string]any); ok {
					delete(kdf, "salt")
				}
			}
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	a, b := norm(e.create(t, "a", 64<<20, nil)), norm(e.create(t, "b", 3<<30, nil))
	if a != b {
		t.Errorf("layouts differ:\n%s\n%s", a, b)
	}
}

// TestCreatePlain: an unencrypted volume is a hole of the size asked.
func TestCreatePlain(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	v := e.create(t, "plain", 100<<20, no())
	if v.Encrypted || v.AllocatedBytes != 0 {
		t.Fatalf("%+v", v)
	}
	if _, err := os.Stat(filepath.Join(e.dir, v.ID, "key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an unencrypted volume has a key file: %v", err)
	}
	a, err := e.s.Attach(ctx, "a", v.ID, "m", false)
	if err != nil || a.Key != nil {
		t.Fatalf("attach %+v %v", a, err)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.create(t, "taken", 64<<20, no())
	for _, tc := range []struct {
		name string
		req  CreateRequest
		kind error
	}{
		{"slash", CreateRequest{App: "a", Name: "a/b"}, errdefs.ErrInvalidArgument},
		{"dotdot", CreateRequest{App: "a", Name: "a..b"}, errdefs.ErrInvalidArgument},
		{"dots", CreateRequest{App: "a", Name: ".."}, errdefs.ErrInvalidArgument},
		{"empty", CreateRequest{App: "a", Name: ""}, errdefs.ErrInvalidArgument},
		{"long", CreateRequest{App: "a", Name: strings.Repeat("x", 64)}, errdefs.ErrInvalidArgument},
		{"small", CreateRequest{App: "a", Name: "s", Size: 1 << 20}, errdefs.ErrInvalidArgument},
		{"huge", CreateRequest{App: "a", Name: "h", Size: 17 << 40}, errdefs.ErrInvalidArgument},
		{"taken", CreateRequest{App: "a", Name: "taken", Encrypted: no()}, errdefs.ErrAlreadyExists},
		{"no-snapshot", CreateRequest{App: "a", Name: "n", Snapshot: "vs_nope"}, errdefs.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.s.Create(ctx, tc.req)
			if !errors.Is(err, tc.kind) {
				t.Fatalf("err %v, want %v", err, tc.kind)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error has several lines: %q", err)
			}
		})
	}
	// The same name in another app is another volume.
	if _, err := e.s.Create(ctx, CreateRequest{App: "other", Name: "taken", Size: 64 << 20, Encrypted: no()}); err != nil {
		t.Fatal(err)
	}
	vs, _ := e.s.List(ctx, "")
	if len(vs) != 2 {
		t.Errorf("%d volumes after failed creates, want 2", len(vs))
	}
	ents, _ := os.ReadDir(e.dir)
	if len(ents) != 3 { // two volumes + snapshots/
		t.Errorf("volumes dir holds %d entries after failed creates", len(ents))
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1g": 1 << 30, "512m": 512 << 20, "10GiB": 10 << 30, "1.5GB": 1536 << 20,
		"33554432": 32 << 20, "40000000": 39 << 20, "2t": 2 << 40, "64M": 64 << 20} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1g", "0", "1k", "1.5", "17t", "NaN", "1e400"} {
		if _, err := ParseSize(in); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ParseSize(%q): %v, want invalid", in, err)
		}
	}
}

// TestOneWriter: of machines racing to attach one volume read-write,
// exactly one wins; read-only holders exclude writers and share with each
// other; releasing the writer lets another in; an attached volume cannot be
// removed.
func TestOneWriter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.create(t, "v", 64<<20, no())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var won []string
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := "m" + string(rune('a'+i))
			_, err := e.s.Attach(ctx, "a", "v", m, false)
			switch {
			case err == nil:
				mu.Lock()
				won = append(won, m)
				mu.Unlock()
			case !errors.Is(err, errdefs.ErrConflict):
				t.Errorf("attach %s: %v", m, err)
			}
		}()
	}
	wg.Wait()
	if len(won) != 1 {
		t.Fatalf("%d machines attached read-write: %v", len(won), won)
	}
	if _, err := e.s.Attach(ctx, "a", "v", "reader", true); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("read-only beside a writer: %v", err)
	}
	if err := e.s.Remove(ctx, "a", "v"); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("remove while attached: %v", err)
	}
	if _, err := e.s.Attach(ctx, "a", "v", won[0], false); err != nil {
		t.Errorf("re-attach by the holder: %v", err)
	}
	if _, err := e.s.Release(ctx, won[0]); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"r1", "r2"} {
		if _, err := e.s.Attach(ctx, "a", "v", m, true); err != nil {
			t.Fatalf("read-only %s: %v", m, err)
		}
	}
	if _, err := e.s.Attach(ctx, "a", "v", "w", false); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("writer beside readers: %v", err)
	}
	if err := e.s.Reconcile(ctx, []string{"r1", "r2"}, []string{"r1"}); err != nil {
		t.Fatal(err)
	}
	v, _ := e.s.Get(ctx, "a", "v")
	if len(v.Attachments) != 2 || !v.Attachments[0].Active || v.Attachments[1].Active {
		t.Errorf("after reconcile (r2 known, not running): %+v", v.Attachments)
	}
	if err := e.s.Reconcile(ctx, []string{"r1"}, []string{"r1"}); err != nil {
		t.Fatal(err)
	}
	v, _ = e.s.Get(ctx, "a", "v")
	if len(v.Attachments) != 1 || v.Attachments[0].Machine != "r1" {
		t.Errorf("after reconcile (r2 gone): %+v", v.Attachments)
	}
	// A stopped holder keeps a reference (no removal) but claims nothing.
	if err := e.s.Deactivate(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Reference(ctx, "a", "v", "later", false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Attach(ctx, "a", "v", "w", false); err != nil {
		t.Errorf("writer once the readers stopped: %v", err)
	}
	if _, err := e.s.Attach(ctx, "a", "v", "later", false); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("a referencing machine starting beside the writer: %v", err)
	}
	if err := e.s.Remove(ctx, "a", "v"); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("remove while referenced: %v", err)
	}
}

// TestExtend: the file grows, the data stays, shrinking is refused.
func TestExtend(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	v := e.create(t, "v", 64<<20, no())
	marker := []byte("extend keeps this")
	writeAt(t, v.Path, 40<<20, marker)
	before := fileHash(t, v.Path)
	got, needsRestart, err := e.s.Extend(ctx, "a", "v", 128<<20)
	if err != nil || got.SizeBytes != 128<<20 || needsRestart {
		t.Fatalf("extend: %+v %v %v", got, needsRestart, err)
	}
	if b := readAt(t, v.Path, 40<<20, len(marker)); !bytes.Equal(b, marker) {
		t.Errorf("data after extend: %q", b)
	}
	f, _ := os.Open(v.Path)
	head := make([]byte, 64<<20)
	_, _ = f.ReadAt(head, 0)
	f.Close()
	if sum := sha256sum(head); sum != before {
		t.Error("the first 64 MiB changed")
	}
	if _, _, err := e.s.Extend(ctx, "a", "v", 64<<20); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("shrink: %v", err)
	}
	if _, err := e.s.Attach(ctx, "a", "v", "m", false); err != nil {
		t.Fatal(err)
	}
	if _, needsRestart, err := e.s.Extend(ctx, "a", "v", 200<<20); err != nil || !needsRestart {
		t.Errorf("extend attached: restart %v, %v", needsRestart, err)
	}
}

// TestSnapshotRestore: a volume made from a snapshot holds the source's
// bytes (and opens with its key); a volume attached read-write is not
// copied (no reflink here); snapshots outlive their volume.
func TestSnapshotRestore(t *testing.T) {
	prereq.Tool(t, "cryptsetup")
	t.Parallel()
	e := newEnv(t, "")
	v := e.create(t, "src", 64<<20, nil)
	writeAt(t, v.Path, 10<<20, []byte("snapshot me"))
	snap, err := e.s.CreateSnapshot(ctx, "a", "src")
	if err != nil {
		t.Fatal(err)
	}
	if snap.State != StateReady || !snap.Encrypted || snap.Volume != v.ID {
		t.Fatalf("%+v", snap)
	}
	writeAt(t, v.Path, 10<<20, []byte("changed after"))
	n, err := e.s.Create(ctx, CreateRequest{App: "a", Name: "copy", Snapshot: snap.ID, Size: 96 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if n.SizeBytes != 96<<20 || !n.Encrypted || n.Snapshot != snap.ID {
		t.Fatalf("%+v", n)
	}
	if b := readAt(t, n.Path, 10<<20, 11); string(b) != "snapshot me" {
		t.Errorf("restored volume reads %q", b)
	}
	if _, err := e.s.Attach(ctx, "a", "copy", "m", false); err != nil {
		t.Errorf("the restored volume's key: %v", err)
	}
	if _, err := e.s.Create(ctx, CreateRequest{App: "a", Name: "small", Snapshot: snap.ID, Size: 32 << 20}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("smaller than the snapshot: %v", err)
	}
	if _, err := e.s.Attach(ctx, "a", "src", "w", false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.CreateSnapshot(ctx, "a", "src"); err != nil && !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("snapshot of an attached volume: %v", err)
	} else if err == nil && !reflinks(t, e.dir) {
		t.Error("an attached volume was copied without reflink")
	}
	if _, err := e.s.Release(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Remove(ctx, "a", "src"); err != nil {
		t.Fatal(err)
	}
	if l, _ := e.s.Snapshots(ctx, "a", v.ID); len(l) < 1 {
		t.Errorf("snapshots of a removed volume: %+v", l)
	}
	if err := e.s.RemoveSnapshot(ctx, "a", snap.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(snap.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("removed snapshot file: %v", err)
	}
}

// reflinks reports whether dir's filesystem can reflink.
func reflinks(t *testing.T, dir string) bool {
	a, b := filepath.Join(dir, "rl-a"), filepath.Join(dir, "rl-b")
	if err := os.WriteFile(a, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(a)
	defer os.Remove(b)
	return reflink(a, b) == nil
}

// TestKeys: a wrong key file, a missing one, a wrapped key without the
// daemon's key or with another are each refused at attach with one line,
// and the volume's bytes are untouched.
func TestKeys(t *testing.T) {
	prereq.Tool(t, "cryptsetup")
	t.Parallel()
	root := t.TempDir()
	wrap := bytes.Repeat([]byte{1}, 32)
	e := newEnv(t, root, WithWrapKey(wrap))
	v := e.create(t, "w", 64<<20, nil)
	kp := filepath.Join(e.dir, v.ID, "key")
	kb, _ := os.ReadFile(kp)
	if !bytes.HasPrefix(kb, wrappedMagic) {
		t.Fatal("the key is not wrapped")
	}
	if _, err := e.s.Attach(ctx, "a", "w", "m", false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Release(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	sum := fileHash(t, v.Path)
	e.db.Close()
	for name, opts := range map[string][]Option{"no wrap key": nil, "other wrap key": {WithWrapKey(bytes.Repeat([]byte{2}, 32))}} {
		e2 := newEnv(t, root, opts...)
		_, err := e2.s.Attach(ctx, "a", "w", "m", false)
		if err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: attach: %v", name, err)
		}
		e2.db.Close()
	}
	e3 := newEnv(t, root, WithWrapKey(wrap))
	e3.create(t, "raw", 64<<20, nil)
	if _, err := e3.s.Attach(ctx, "a", "w", "m", false); err != nil {
		t.Errorf("the right wrap key: %v", err)
	}
	// Replace a key with another 32 bytes: checked against the header.
	rv, _ := e3.s.Get(ctx, "a", "raw")
	if err := os.WriteFile(filepath.Join(e3.dir, rv.ID, "key"), bytes.Repeat([]byte{9}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	rsum := fileHash(t, rv.Path)
	if _, err := e3.s.Attach(ctx, "a", "raw", "m2", false); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "wrong key") {
		t.Errorf("wrong key: %v", err)
	}
	if err := os.Remove(filepath.Join(e3.dir, rv.ID, "key")); err != nil {
		t.Fatal(err)
	}
	if _, err := e3.s.Attach(ctx, "a", "raw", "m2", false); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing key: %v", err)
	}
	if fileHash(t, v.Path) != sum || fileHash(t, rv.Path) != rsum {
		t.Error("a refused attach changed a volume")
	}
	if g, _ := e3.s.Get(ctx, "a", "raw"); len(g.Attachments) != 0 {
		t.Errorf("a refused attach was recorded: %+v", g.Attachments)
	}
}

// TestNoSpace: on a full (small) host filesystem, create and extend fail
// with one line saying so and leave nothing: no record, no file.
func TestNoSpace(t *testing.T) {
	prereq.Root(t, "to mount a small tmpfs as the data root")
	t.Parallel()
	root := t.TempDir()
	privateMounts(t)
	if err := syscall.Mount("tmpfs", root, "tmpfs", 0, "size=48m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(root, syscall.MNT_DETACH) })
	e := newEnv(t, root)
	if _, err := e.s.Create(ctx, CreateRequest{App: "a", Name: "big", Size: 64 << 20, Encrypted: no()}); !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "free") {
		t.Errorf("64 MiB on a 48 MiB disk: %v", err)
	}
	e.create(t, "fits", 32<<20, no())
	// The first volume may still fill 32 MiB: a second does not fit.
	if _, err := e.s.Create(ctx, CreateRequest{App: "a", Name: "second", Size: 32 << 20, Encrypted: no()}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("overcommit: %v", err)
	}
	if _, _, err := e.s.Extend(ctx, "a", "fits", 64<<20); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("extend past the disk: %v", err)
	}
	if v, _ := e.s.Get(ctx, "a", "fits"); v.SizeBytes != 32<<20 || v.State != StateReady {
		t.Errorf("after a failed extend: %+v", v)
	}
	vs, _ := e.s.List(ctx, "")
	ents, _ := os.ReadDir(e.dir)
	if len(vs) != 1 || len(ents) != 2 {
		t.Errorf("%d volumes, %d entries in the volumes dir after failed creates", len(vs), len(ents))
	}
}

// privateMounts moves the test's goroutine, for good, onto a thread with
// a private mount namespace (a mount in the host's namespace would be
// copied into any namespace created meanwhile).
func privateMounts(t *testing.T) {
	runtime.LockOSThread()
	if err := syscall.Unshare(syscall.CLONE_NEWNS); err != nil {
		t.Fatalf("unshare the mount namespace: %v", err)
	}
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		t.Fatalf("make / private: %v", err)
	}
}
