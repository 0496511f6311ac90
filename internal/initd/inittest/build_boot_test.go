package inittest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/guest"
)

// helper runs one build-helper op in the VM, feeding stdin, and returns
// stdout, stderr and the exit code.
func helper(ctx context.Context, t *testing.T, c *guest.Client, op guest.BuildOp, stdin []byte) ([]byte, string, int) {
	t.Helper()
	op.Base, op.Scratch = "/dev/vda", "/dev/vdb"
	p, err := c.Exec(ctx, guest.ExecRequest{Argv: op.Argv(), Stdin: stdin != nil, User: "0:0"})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	var errb strings.Builder
	done := make(chan struct{}, 2)
	go func() { io.Copy(&out, p.Stdout); done <- struct{}{} }()
	go func() { copyTo(&errb, p.Stderr); done <- struct{}{} }()
	if stdin != nil {
		w := p.Stdin()
		w.Write(stdin)
		w.Close()
	}
	ex, err := p.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	<-done
	<-done
	return out.Bytes(), errb.String(), ex.Code
}

func tree(t *testing.T, es ...guest.TreeEntry) []byte {
	var buf bytes.Buffer
	tw := guest.NewTreeWriter(&buf)
	for i := range es {
		e := es[i]
		data := e.Link
		if e.Type == guest.TreeReg {
			e.Link, e.Size = "", int64(len(data))
		}
		if e.Mode == 0 {
			e.Mode = 0o644
		}
		tw.WriteEntry(&e)
		tw.Write([]byte(data))
	}
	tw.Close()
	return buf.Bytes()
}

func names(t *testing.T, b []byte) []string {
	tr := guest.NewTreeReader(bytes.NewReader(b))
	var out []string
	for {
		e, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e.Name)
	}
}

// TestBuildHelper boots ferry-init as a builder VM (entrypoint: the idle
// helper) and drives RUN steps through exec: a loaded layer with a
// whiteout is a lower, a step's rm becomes an OCI whiteout in its diff,
// mounts (secret, cache, heredoc, tmpfs) leave nothing in the layer, the
// cache persists between steps, --network=none has only lo, and a failing
// command's status and output come back.
func TestBuildHelper(t *testing.T) {
	e := Setup(t)
	base := e.Rootfs(t, map[string]string{"/etc/motd": "welcome\n", "/srv/old/a": "a"})
	cfg := baseConfig(guest.BuildOp{Op: guest.BuildIdle}.Argv()...)
	b := e.Start(t, cfg, Disks{Base: base, Scratch: Scratch(t, 256)}, Options{MemoryMB: 256})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c, err := b.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitRunning(ctx, t, c)

	// A layer from the host: a file, a whiteout of the base's /etc/motd,
	// an opaque /srv.
	layer := tree(t,
		guest.TreeEntry{Name: "app", Type: guest.TreeDir, Mode: 0o755},
		guest.TreeEntry{Name: "app/hello", Type: guest.TreeReg, Link: "hello from a layer\n"},
		guest.TreeEntry{Name: "etc", Type: guest.TreeDir, Mode: 0o755},
		guest.TreeEntry{Name: "etc/.wh.motd", Type: guest.TreeReg},
		guest.TreeEntry{Name: "srv", Type: guest.TreeDir, Mode: 0o755},
		guest.TreeEntry{Name: "srv/.wh..wh..opq", Type: guest.TreeReg},
		guest.TreeEntry{Name: "srv/new", Type: guest.TreeReg, Link: "n"})
	if _, stderr, code := helper(ctx, t, c, guest.BuildOp{Op: guest.BuildLoad, Kind: guest.LoadLayer, ID: "l1"}, layer); code != 0 {
		t.Fatalf("load: %d %s", code, stderr)
	}
	secret := "s3cr3t-value-never-in-a-layer"
	step := guest.BuildStep{
		Upper: "l2", Lowers: []string{"l1"}, User: "app", Workdir: "/work/dir",
		Env: []string{"FOO=bar"},
		Argv: []string{"/bin/sh", "-c", `set -e
cat /app/hello
test ! -e /etc/motd && echo motd-gone
ls /srv | tr '\n' ' '; echo
echo "user=$(id -u) pwd=$(pwd) foo=$FOO home=$HOME"
echo "secret=$(cat /run/secrets/tok)"
echo "links=$(ls /sys/class/net | tr '\n' ' ')"
echo cached > /cache/f
echo t > /scratch/x
/dev/pipes/script
echo made > /work/dir/out`},
		Mounts: []guest.BuildMount{
			{Type: "secret", Target: "/run/secrets/tok", Data: []byte(secret), UID: 1000},
			{Type: "cache", Target: "/cache", Source: "c1", UID: 1000, GID: 1000},
			{Type: "tmpfs", Target: "/scratch"},
		},
		Files: []guest.BuildFile{{Name: "script", Data: "#!/bin/sh\necho from-heredoc\n"}},
	}
	raw, _ := json.Marshal(step)
	out, stderr, code := helper(ctx, t, c, guest.BuildOp{Op: guest.BuildRun}, raw)
	if code != 0 {
		t.Fatalf("run: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	for _, want := range []string{"hello from a layer", "motd-gone", "new \n", "user=1000 pwd=/work/dir foo=bar home=/home/app",
		"secret=" + secret, "links=lo \n", "from-heredoc"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("step output lacks %q:\n%s", want, out)
		}
	}

	// The second step removes a lower file and sees the cache.
	step2 := guest.BuildStep{Upper: "l3", Lowers: []string{"l2", "l1"}, Network: true,
		Argv:   []string{"/bin/sh", "-c", "cat /cache/f; rm /app/hello; rm -rf /home/app; mkdir /home/app"},
		Mounts: []guest.BuildMount{{Type: "cache", Target: "/cache", Source: "c1"}}}
	raw, _ = json.Marshal(step2)
	if out, stderr, code := helper(ctx, t, c, guest.BuildOp{Op: guest.BuildRun}, raw); code != 0 || !strings.Contains(string(out), "cached") {
		t.Fatalf("run 2: exit %d %s %s", code, out, stderr)
	}

	diff, stderr, code := helper(ctx, t, c, guest.BuildOp{Op: guest.BuildDiff, ID: "l2"}, nil)
	if code != 0 {
		t.Fatalf("diff: %d %s", code, stderr)
	}
	if got := strings.Join(names(t, diff), " "); got != "work work/dir work/dir/out" {
		t.Errorf("step 1 diff = %s (mount points, secrets or caches leaked?)", got)
	}
	if bytes.Contains(diff, []byte(secret)) {
		t.Error("the secret is in the layer")
	}
	diff3, _, _ := helper(ctx, t, c, guest.BuildOp{Op: guest.BuildDiff, ID: "l3"}, nil)
	if got := strings.Join(names(t, diff3), " "); got != "app app/.wh.hello home home/app home/app/.wh..wh..opq" {
		t.Errorf("step 2 diff = %s", got)
	}
	saved, _, _ := helper(ctx, t, c, guest.BuildOp{Op: guest.BuildSave, ID: "c1"}, nil)
	if got := strings.Join(names(t, saved), " "); got != "f" {
		t.Errorf("cache = %s", got)
	}

	fail := guest.BuildStep{Upper: "l4", Lowers: []string{"l1"}, Argv: []string{"/bin/sh", "-c", "echo doomed >&2; exit 3"}}
	raw, _ = json.Marshal(fail)
	if _, stderr, code := helper(ctx, t, c, guest.BuildOp{Op: guest.BuildRun}, raw); code != 3 || !strings.Contains(stderr, "doomed") {
		t.Errorf("failing step: exit %d, stderr %q", code, stderr)
	}
	missing := guest.BuildStep{Upper: "l5", Argv: []string{"no-such-tool"}}
	raw, _ = json.Marshal(missing)
	if _, stderr, code := helper(ctx, t, c, guest.BuildOp{Op: guest.BuildRun}, raw); code != 127 || !strings.Contains(stderr, "no-such-tool") {
		t.Errorf("missing command: exit %d, stderr %q", code, stderr)
	}
	if err := c.Signal(ctx, 15); err != nil {
		t.Fatal(err)
	}
	ex, err := c.Wait(ctx)
	if err != nil || ex.Code != 0 {
		t.Errorf("idle helper exit %+v %v", ex, err)
	}
}
