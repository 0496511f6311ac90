package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/image"
	"github.com/ferryvm/ferry/internal/testimage"
)

func pushRandom(t *testing.T, host, repo string, seed uint64, layers, size int) string {
	t.Helper()
	img, err := testimage.Random(seed, layers, size)
	if err != nil {
		t.Fatal(err)
	}
	return testimage.Push(t, host, repo, img)
}

func TestImageVerbsEndToEnd(t *testing.T) {
	reg := testimage.Registry(t)
	ref := pushRandom(t, reg, "test/app:v1", 1, 3, 64<<10)
	e := newFerryEnv(t)

	out := e.ok("pull", ref)
	if !strings.HasPrefix(out, "v1: Pulling from test/app\n") || !strings.Contains(out, "Status: Downloaded newer image for "+ref) || !strings.HasSuffix(out, ref+"\n") {
		t.Fatalf("pull output:\n%s", out)
	}
	if lines := regexp.MustCompile(`(?m)^[0-9a-f]{12}: Pull complete$`).FindAllString(out, -1); len(lines) != 3 {
		t.Errorf("want a Pull complete line per layer (3), got:\n%s", out)
	}
	if out := e.ok("pull", ref); !strings.Contains(out, "Image is up to date for") {
		t.Errorf("second pull:\n%s", out)
	}
	if out := e.ok("pull", "-q", ref); out != ref+"\n" {
		t.Errorf("pull -q = %q", out)
	}

	// images: table, json, -q
	table := e.ok("images")
	if !regexp.MustCompile(`(?m)^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$`).MatchString(table) ||
		!regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(reg+"/test/app")+`\s+v1\s+[0-9a-f]{12}\s+`).MatchString(table) {
		t.Fatalf("images table:\n%s", table)
	}
	var list []image.Summary
	if err := json.Unmarshal([]byte(e.ok("images", "--format", "json")), &list); err != nil || len(list) != 1 {
		t.Fatalf("images --format json: %v, %+v", err, list)
	}
	id := list[0].ID
	if out := e.ok("images", "-q"); out != id.Hex[:12]+"\n" {
		t.Errorf("images -q = %q, want %s", out, id.Hex[:12])
	}

	// inspect
	var details []image.Details
	if err := json.Unmarshal([]byte(e.ok("image", "inspect", ref)), &details); err != nil || len(details) != 1 {
		t.Fatalf("image inspect: %v", err)
	}
	if d := details[0]; d.ID != id || len(d.Layers) != 3 || d.Layers[0].DiffID.Hex == "" || d.Platform.OS != "linux" {
		t.Errorf("inspect = %+v", d)
	}
	e.fails([]string{"nope"}, "image", "inspect", reg+"/nope:1")

	// tag, ls alias, rmi of one tag
	e.ok("tag", ref, "other/name:2")
	if out := e.ok("image", "ls"); !strings.Contains(out, "other/name") {
		t.Errorf("image ls after tag:\n%s", out)
	}
	if out := e.ok("rmi", "other/name:2"); !strings.Contains(out, "Untagged: other/name:2") || strings.Contains(out, "Deleted") {
		t.Errorf("rmi of a second tag:\n%s", out)
	}

	// save → rmi → prune → load round trip
	tar := filepath.Join(t.TempDir(), "app.tar")
	if r := e.run(nil, "save", "-o", tar, ref); r.code != 0 {
		t.Fatalf("save: %s", r)
	}
	if out := e.ok("rmi", ref); !strings.Contains(out, "Deleted: "+id.String()) {
		t.Errorf("rmi:\n%s", out)
	}
	if out := e.ok("images", "-q", "-a"); out != "" {
		t.Errorf("images after rmi: %q", out)
	}
	if out := e.ok("image", "prune", "-a", "-f"); !strings.Contains(out, "Total reclaimed space:") {
		t.Errorf("prune:\n%s", out)
	}
	if out := e.ok("load", "-i", tar); !strings.Contains(out, "Loaded image: "+ref) {
		t.Errorf("load:\n%s", out)
	}
	if out := e.ok("images", "-q"); out != id.Hex[:12]+"\n" {
		t.Errorf("images after load = %q", out)
	}
	// and from stdin
	e.ok("rmi", ref)
	f, err := os.Open(tar)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if r := e.run(f, "load", "-q"); r.code != 0 || r.stdout != ref+"\n" {
		t.Errorf("load from stdin: %s", r)
	}
	if out := e.ok("image", "verify"); !strings.Contains(out, "1 images") {
		t.Errorf("verify:\n%s", out)
	}

	// save to a pipe, load from a pipe
	piped := e.ok("save", ref)
	e.ok("rmi", ref)
	if r := e.run(strings.NewReader(piped), "load"); r.code != 0 || !strings.Contains(r.stdout, "Loaded image: "+ref) {
		t.Errorf("save | load: %s", r)
	}

	// a malformed tar: one line, cache unchanged
	bad := filepath.Join(t.TempDir(), "bad.tar")
	if err := os.WriteFile(bad, []byte(strings.Repeat("not a tar ", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	before := e.ok("images", "-a", "--format", "json")
	e.fails([]string{"load"}, "load", "-i", bad)
	if after := e.ok("images", "-a", "--format", "json"); after != before {
		t.Errorf("a failed load changed the cache:\n%s\n%s", before, after)
	}
}

func TestPullErrorsAreOneLine(t *testing.T) {
	reg := testimage.Registry(t)
	e := newFerryEnv(t)
	e.fails([]string{reg + "/missing/repo:v1"}, "pull", reg+"/missing/repo:v1")
	e.fails([]string{"invalid"}, "pull", "UPPER/Case")
	if r := e.fails(nil, "images", "--format", "yaml"); r.code != 2 {
		t.Errorf("bad --format: exit %d, want 2", r.code)
	}
}

func TestDaemonUnreachable(t *testing.T) {
	e := &ferryEnv{t: t, sock: filepath.Join(t.TempDir(), "none.sock"), dockerCfg: t.TempDir()}
	e.fails([]string{"cannot reach the ferry daemon", "ferry daemon", "FERRY_HOST"}, "images")
}

func TestSecondDaemonOnSameRoot(t *testing.T) {
	e := newFerryEnv(t)
	r := e.run(nil, "daemon", "--root", e.root, "--socket", filepath.Join(t.TempDir(), "other.sock"))
	if r.code == 0 {
		t.Fatalf("second daemon started: %s", r)
	}
	msg := strings.TrimSpace(r.stderr)
	if strings.Contains(msg, "\n") {
		t.Errorf("not one line: %q", msg)
	}
	for _, w := range []string{e.root, fmt.Sprintf("pid %d", e.daemon.Process.Pid), "--root"} {
		if !strings.Contains(msg, w) {
			t.Errorf("%q does not mention %q", msg, w)
		}
	}
}

func TestTCPAPIRequiresToken(t *testing.T) {
	addr := freeTCPAddr(t)
	e := newFerryEnv(t, "--api-addr", addr, "--api-token", "s3cret")
	resp, err := http.Get("http://" + addr + "/v1/_ping")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: status %d, want 401", resp.StatusCode)
	}
	e.fails([]string{"token"}, "-H", "tcp://"+addr, "images")
	e.ok("-H", "tcp://"+addr, "--token", "s3cret", "images")
	// The daemon refuses a TCP address without a token.
	r := e.run(nil, "daemon", "--root", t.TempDir(), "--socket", filepath.Join(t.TempDir(), "s.sock"), "--api-addr", freeTCPAddr(t))
	if r.code == 0 || !strings.Contains(r.stderr, "--api-token") {
		t.Fatalf("daemon without --api-token: %s", r)
	}
}

// TestDaemonStopsCleanlyOnSIGTERM checks a SIGTERMed daemon exits 0,
// removes its socket and releases the root for the next daemon.
func TestDaemonStopsCleanlyOnSIGTERM(t *testing.T) {
	e := newFerryEnv(t)
	if err := e.daemon.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("daemon still running 15s after SIGTERM")
	}
	if code := e.daemon.ProcessState.ExitCode(); code != 0 {
		t.Errorf("daemon exit status %d after SIGTERM, want 0:\n%s", code, e.daemonLog)
	}
	if _, err := os.Stat(e.sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
	if !strings.Contains(e.daemonLog.String(), "shutting down") {
		t.Errorf("no shutdown log line:\n%s", e.daemonLog)
	}
	e.startDaemon() // the root is free again
	e.ok("images")
}

func TestPullPlatformFromIndex(t *testing.T) {
	reg := testimage.Registry(t)
	idx, err := testimage.Index("linux/amd64", "linux/arm64/v8")
	if err != nil {
		t.Fatal(err)
	}
	ref := testimage.PushIndex(t, reg, "multi/app:1", idx)
	e := newFerryEnv(t)
	e.ok("pull", "-q", "--platform", "linux/arm64/v8", ref)
	var details []image.Details
	if err := json.Unmarshal([]byte(e.ok("image", "inspect", ref)), &details); err != nil {
		t.Fatal(err)
	}
	if p := details[0].Platform; p.Architecture != "arm64" || p.OS != "linux" {
		t.Errorf("pulled platform %+v, want linux/arm64", p)
	}
	e.fails([]string{"s390x", "linux/amd64"}, "pull", "--platform", "linux/s390x", ref)
}
