package cli

import (
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ferryvm/ferry/internal/testimage"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// An image crane pushes to `ferry daemon --mirror-addr` starts a machine
// under the pushed name with no pull: the test daemon reaches no registry,
// so a run of a name the push did not put in the cache fails.
func TestMirrorCranePushThenRun(t *testing.T) {
	crane := prereq.Tool(t, "crane")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	e := vmEnv(t, "--mirror-addr", addr)

	img, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	const ref = "registry.example.com/mirror2/busybox:v1"
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	tb := filepath.Join(t.TempDir(), "busybox.tar")
	if err := tarball.WriteToFile(tb, tag, img); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(crane, "push", "--insecure", tb, addr+"/"+ref).Output()
	if err != nil {
		t.Fatalf("crane push to the mirror: %v\n%s", err, out)
	}
	// crane prints the pushed reference by digest (repo@sha256:…).
	_, pushed, ok := strings.Cut(strings.TrimSpace(string(out)), "@")
	if !ok {
		t.Fatalf("crane push printed %q, want a digest reference", out)
	}
	var row string
	for _, line := range strings.Split(e.ok("images"), "\n") {
		if strings.HasPrefix(line, "registry.example.com/mirror2/busybox ") {
			row = line
		}
	}
	if !strings.Contains(row, "v1") || !strings.Contains(row, strings.TrimPrefix(pushed, "sha256:")[:12]) {
		t.Fatalf("ferry images right after the push has no row for %s (%s): %q", ref, pushed, row)
	}
	if r := e.run(nil, "run", "--rm", ref, "echo", "from the mirror"); r.code != 0 || r.stdout != "from the mirror\n" {
		t.Fatalf("run the pushed image: %s\ndaemon:\n%s", r, e.daemonLog)
	}
	// crane reads back the digest it pushed.
	out, err = exec.Command(crane, "digest", "--insecure", addr+"/"+ref).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != pushed {
		t.Fatalf("crane digest from the mirror: %v %q, want %s", err, out, pushed)
	}
}

// A machine reaches the mirror on its network's gateway at the port of
// --mirror-addr (the daemon serves it there and lets that port in).
func TestMirrorOnGateway(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	e := vmEnv(t, "--mirror-addr", addr)
	script := `gw=$(ip route | awk '/^default/ {print $3}'); wget -q -S -O /dev/null "http://$gw:` + port + `/v2/" 2>&1 | grep -i 'Docker-Distribution-Api-Version' && echo reached`
	r := e.run(nil, "run", "--rm", "busybox:vm", "sh", "-c", script)
	if r.code != 0 || !strings.Contains(r.stdout, "reached") {
		t.Fatalf("the mirror on the gateway from a machine: %s\ndaemon:\n%s", r, e.daemonLog)
	}
}
