package cli

import (
	"encoding/json"
	"io"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferryvm/ferry/internal/image"
	"github.com/ferryvm/ferry/internal/testimage"
)

// TestPushToAnotherRegistry pulls from one registry, tags for a second,
// pushes, and checks the second serves the same manifest digest.
func TestPushToAnotherRegistry(t *testing.T) {
	src := testimage.Registry(t)
	dst := testimage.Registry(t)
	ref := pushRandom(t, src, "a/app:1", 21, 2, 32<<10)
	e := newFerryEnv(t)
	e.ok("pull", "-q", ref)
	target := dst + "/b/app:2"
	e.ok("tag", ref, target)
	out := e.ok("push", target)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(target) + `: digest: (sha256:[0-9a-f]{64})$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("push output:\n%s", out)
	}
	if n := strings.Count(out, ": Pushed\n"); n != 2 {
		t.Errorf("want 2 Pushed layer lines, got %d:\n%s", n, out)
	}
	r, err := name.ParseReference(target, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(r)
	if err != nil {
		t.Fatalf("target registry lacks the pushed image: %v", err)
	}
	var list []image.Summary
	if err := json.Unmarshal([]byte(e.ok("images", "--format", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != m[1] || list[0].ID.String() != m[1] {
		t.Errorf("digests differ: registry %s, push said %s, cache %s", desc.Digest, m[1], list[0].ID)
	}
	// A second push finds every layer there already.
	if out := e.ok("push", target); strings.Count(out, "Layer already exists") != 2 {
		t.Errorf("second push:\n%s", out)
	}
}

// TestInterruptedPullCancelsInDaemon sends SIGINT to `ferry pull` while the
// daemon is downloading: the daemon abandons the pull, lists nothing, and
// the next pull succeeds.
func TestInterruptedPullCancelsInDaemon(t *testing.T) {
	sb := &slowBlobs{}
	reg := testimage.Serve(t, sb.wrap)
	img, err := testimage.Random(9, 2, 2<<20)
	if err != nil {
		t.Fatal(err)
	}
	ref := testimage.Push(t, reg, "slow/app:1", img)
	sb.served.Store(0)
	sb.slow.Store(true)
	e := newFerryEnv(t)
	pull := e.command([]string{"DOCKER_CONFIG=" + e.dockerCfg}, "pull", ref)
	pull.Stdout, pull.Stderr = io.Discard, io.Discard
	if err := pull.Start(); err != nil {
		t.Fatal(err)
	}
	for sb.served.Load() < 256<<10 {
		time.Sleep(10 * time.Millisecond)
	}
	if err := pull.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := pull.Wait(); err == nil {
		t.Fatal("interrupted pull exited 0")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(e.daemonLog.String(), "pull failed") {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not abandon the pull:\n%s", e.daemonLog)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out := e.ok("images", "-a", "-q"); out != "" {
		t.Errorf("an interrupted pull left an image: %q", out)
	}
	sb.slow.Store(false)
	e.ok("pull", "-q", ref)
	e.ok("image", "verify")
}
