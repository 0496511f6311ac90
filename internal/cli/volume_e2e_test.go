package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/testimage"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// TestVolumesEndToEnd runs real VMs with every kind of mount: data written
// through a named volume by one machine is read by the next (and after a
// daemon restart, and after an extend), :ro refuses writes, one writer at
// a time, an encrypted volume's file never holds the plaintext (and a
// plain one's does), cryptsetup reads the header, bind mounts carry owners
// and modes both ways with :ro enforced by the host, tmpfs sizes, and an
// image's VOLUME gets an anonymous volume that rm -v removes.
func TestVolumesEndToEnd(t *testing.T) {
	cryptsetup := prereq.Tool(t, "cryptsetup")
	e := vmEnv(t)
	loadVolumeImage(t, e)
	vol := func(n string) api.Volume {
		var vs []api.Volume
		if err := json.Unmarshal([]byte(e.ok("volume", "inspect", n)), &vs); err != nil || len(vs) != 1 {
			t.Fatalf("volume inspect %s: %v", n, err)
		}
		return vs[0]
	}
	fileHas := func(p, marker string) bool {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Contains(b, []byte(marker))
	}
	sh := func(args ...string) result {
		return e.run(nil, append([]string{"run", "--rm"}, args...)...)
	}

	// Named volumes: created on first use, encrypted by default.
	const secret = "ferry-volume-marker-7f3a"
	if r := sh("-v", "data:/data", "busybox:vm", "sh", "-c", "echo "+secret+" > /data/f && sync"); r.code != 0 {
		t.Fatalf("write to a new volume: %s", r)
	}
	data := vol("data")
	if !data.Encrypted || len(data.Attachments) != 0 {
		t.Fatalf("data after its machine is gone: %+v", data)
	}
	if fileHas(data.Path, secret) {
		t.Error("the encrypted volume's host file holds the plaintext")
	}
	if out, err := exec.Command(cryptsetup, "luksDump", data.Path).CombinedOutput(); err != nil || !strings.Contains(string(out), "aes-xts-plain64") {
		t.Errorf("cryptsetup luksDump %s: %v\n%s", data.Path, err, out)
	}
	if r := sh("-v", "data:/data:ro", "busybox:vm", "cat", "/data/f"); r.code != 0 || r.stdout != secret+"\n" {
		t.Errorf("a new machine reads %s, want the marker", r)
	}
	if r := sh("-v", "data:/data:ro", "busybox:vm", "sh", "-c", "echo x > /data/g"); r.code == 0 {
		t.Error("a write to a :ro volume succeeded")
	}

	// A plain volume (--mount) holds the plaintext: the check above can fail.
	if r := sh("--mount", "type=volume,source=plain,target=/p,volume-encrypted=false,volume-size=64m", "busybox:vm",
		"sh", "-c", "echo "+secret+" > /p/f && sync"); r.code != 0 {
		t.Fatalf("write to a plain volume: %s", r)
	}
	if p := vol("plain"); p.Encrypted || !fileHas(p.Path, secret) {
		t.Errorf("plain volume encrypted=%v, marker in its file=%v; want false, true", p.Encrypted, fileHas(p.Path, secret))
	}

	// A corrupt filesystem is one line, and nothing is written; so is a
	// missing key.
	plainPath := vol("plain").Path
	f, err := os.OpenFile(plainPath, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xA5}, 4096), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	before, _ := os.ReadFile(plainPath)
	if r := sh("-v", "plain:/p", "busybox:vm", "true"); r.code == 0 || !strings.Contains(r.stderr, "neither ext4 nor zeros") {
		t.Errorf("a corrupt volume: %s", r)
	}
	if after, _ := os.ReadFile(plainPath); !bytes.Equal(before, after) {
		t.Error("the corrupt volume's file changed")
	}
	keyPath := filepath.Join(filepath.Dir(data.Path), "key")
	key, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	e.fails([]string{"volume data", "key"}, "run", "-d", "-v", "data:/data", "busybox:vm", "true")
	if err := os.WriteFile(keyPath, key, 0o600); err != nil {
		t.Fatal(err)
	}

	// One writer at a time.
	e.ok("run", "-d", "--name", "writer", "-v", "data:/data", "busybox:vm", "sleep", "1000")
	e.fails([]string{"volume data is attached to machine", "one writer at a time"}, "run", "-d", "-v", "data:/data", "busybox:vm", "true")
	e.fails([]string{"one writer at a time"}, "run", "-d", "-v", "data:/data:ro", "busybox:vm", "true")
	e.fails([]string{"attached"}, "volume", "rm", "data")
	// Extend while a machine writes the volume: it grows online (the
	// drive, the dm-crypt mapping, ext4), and later starts see it too.
	mbOf := func(out string) int {
		mb, _ := strconv.Atoi(strings.Fields(out + " 0")[0])
		return mb
	}
	dfData := []string{"exec", "writer", "sh", "-c", "df -Pm /data | tail -1 | awk '{print $2}'"}
	e.eventually("writer booted", 2*time.Minute, func() bool { return e.run(nil, dfData...).code == 0 })
	if mb := mbOf(e.ok(dfData...)); mb < 900 || mb > 1100 {
		t.Fatalf("the 1 GiB volume's filesystem is %d MB", mb)
	}
	if r := e.run(nil, "volume", "extend", "data", "--size", "2g"); r.code != 0 || strings.Contains(r.stderr, "next start") {
		t.Errorf("extend of a volume a running machine writes: %s\ndaemon: %s", r, grepLines(e.daemonLog.String(), "grow"))
	}
	if mb := mbOf(e.ok(dfData...)); mb < 1800 {
		t.Errorf("after an online extend to 2g the running machine's filesystem is %d MB", mb)
	}
	if out := e.ok("exec", "writer", "cat", "/data/f"); out != secret+"\n" {
		t.Errorf("after the online extend: %q", out)
	}
	e.ok("rm", "-f", "writer")
	r := sh("-v", "data:/data", "busybox:vm", "sh", "-c", "cat /data/f && df -Pm /data | tail -1 | awk '{print $2}'")
	if mb, _ := strconv.Atoi(strings.Fields(strings.TrimPrefix(r.stdout, secret+"\n") + " 0")[0]); r.code != 0 || !strings.HasPrefix(r.stdout, secret+"\n") || mb < 1800 {
		t.Errorf("after extend to 2g (want the marker and a filesystem of about 2000 MB): %s", r)
	}

	// A daemon restart keeps a running writer's hold; a host reboot (the
	// daemon and every VMM gone) lets it go, and the data is there.
	e.ok("run", "-d", "--name", "holder", "-v", "data:/data", "busybox:vm", "sleep", "1000")
	e.killDaemon()
	e.startDaemon()
	e.fails([]string{"one writer at a time"}, "run", "-d", "-v", "data:/data", "busybox:vm", "true")
	e.killDaemon()
	killVMMs(e.root)
	e.startDaemon()
	if r := sh("-v", "data:/data", "busybox:vm", "cat", "/data/f"); r.code != 0 || r.stdout != secret+"\n" {
		t.Errorf("after a reboot: %s", r)
	}
	e.ok("rm", "holder")
	if df := e.ok("system", "df"); !strings.Contains(df, "Volumes") {
		t.Errorf("system df shows no volumes:\n%s", df)
	}

	// Bind mounts: owners and modes both ways, :ro enforced by the host.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "host"), []byte("from host\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(dir, "host"), 1234, 5678); err != nil {
		t.Fatal(err)
	}
	if r := sh("-v", dir+":/b", "busybox:vm", "sh", "-c",
		"stat -c '%u %g %a' /b/host && cat /b/host && echo guest > /b/guest && chown 4321:8765 /b/guest && chmod 0604 /b/guest"); r.code != 0 || r.stdout != "1234 5678 640\nfrom host\n" {
		t.Errorf("bind mount read: %s", r)
	}
	if fi, err := os.Stat(filepath.Join(dir, "guest")); err != nil || fi.Mode().Perm() != 0o604 {
		t.Errorf("the guest's file on the host: %v %v", fi, err)
	}
	if r := sh("-v", dir+":/b:ro", "busybox:vm", "sh", "-c", "echo x > /b/ro"); r.code == 0 {
		t.Error("a write to a :ro bind mount succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "ro")); err == nil {
		t.Error("a :ro bind mount wrote to the host")
	}
	e.fails([]string{"not an existing directory"}, "run", "-d", "-v", filepath.Join(dir, "missing")+":/m", "busybox:vm", "true")
	e.fails([]string{"Firecracker has no file sharing"}, "run", "-d", "--vmm", "firecracker", "-v", dir+":/b", "busybox:vm", "true")

	// tmpfs with a size.
	if r := sh("--tmpfs", "/t:size=8m", "busybox:vm", "sh", "-c", "df -k /t | tail -1"); r.code != 0 || !strings.Contains(r.stdout, "8192") {
		t.Errorf("--tmpfs /t:size=8m: %s", r)
	}

	// An image's VOLUME: an anonymous volume, removed by rm -v.
	e.ok("run", "-d", "--name", "anon", "busybox:volume", "sh", "-c", "echo kept > /state/x")
	e.ok("wait", "anon")
	var vs []api.Volume
	if err := json.Unmarshal([]byte(e.ok("volume", "ls", "--format", "json")), &vs); err != nil {
		t.Fatal(err)
	}
	var anon string
	for _, v := range vs {
		if v.Anonymous {
			anon = v.Name
		}
	}
	if anon == "" {
		t.Fatalf("no anonymous volume for the image's VOLUME: %+v", vs)
	}
	e.ok("start", "anon") // the same volume again: the file is there
	e.ok("wait", "anon")
	if logs := e.ok("logs", "anon"); strings.Contains(logs, "can't create") {
		t.Errorf("second start: %s", logs)
	}
	e.ok("rm", "-v", "anon")
	if r := e.run(nil, "volume", "inspect", anon); r.code == 0 {
		t.Errorf("rm -v left the anonymous volume %s", anon)
	}
	vol("data") // named volumes stay
}

// loadVolumeImage loads busybox:volume, busybox with VOLUME /state.
func loadVolumeImage(t *testing.T, e *vmFerry) {
	img, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	c.Volumes = map[string]struct{}{"/state": {}}
	if img, err = mutate.Config(img, c); err != nil {
		t.Fatal(err)
	}
	e.loadImage("busybox:volume", img)
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
