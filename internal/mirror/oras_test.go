package mirror

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// An artifact oras pushes to the mirror (not an image: an OCI manifest
// with a custom artifact type) keeps its tag, which names the digest the
// push printed, through an image gc, and oras pulls it back by that tag
// byte for byte into a fresh directory.
func TestOrasPushPull(t *testing.T) {
	oras := prereq.Tool(t, "oras")
	st, host := newMirror(t)
	src := t.TempDir()
	want := bytes.Repeat([]byte("mirror2 artifact\n"), 1<<16) // ~1 MiB: several chunks
	if err := os.WriteFile(filepath.Join(src, "notes.txt"), want, 0o644); err != nil {
		t.Fatal(err)
	}
	ref := host + "/registry.example.com/artifacts/notes:v1"
	push := exec.Command(oras, "push", "--plain-http", "--artifact-type", "application/vnd.example.notes", ref, "notes.txt:text/plain")
	push.Dir = src
	out, err := push.CombinedOutput()
	if err != nil {
		t.Fatalf("oras push to the mirror: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Digest: (sha256:[0-9a-f]{64})`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("oras push printed no digest:\n%s", out)
	}
	if _, err := st.GC(context.Background()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Head("http://" + host + "/v2/registry.example.com/artifacts/notes/manifests/v1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Docker-Content-Digest"); resp.StatusCode != http.StatusOK || got != string(m[1]) {
		t.Fatalf("tag v1 after gc: %d %s, want %s", resp.StatusCode, got, m[1])
	}
	dst := t.TempDir()
	pull := exec.Command(oras, "pull", "--plain-http", ref)
	pull.Dir = dst
	if out, err := pull.CombinedOutput(); err != nil {
		t.Fatalf("oras pull from the mirror: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(dst, "notes.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("oras pulled %d bytes, pushed %d", len(got), len(want))
	}
}
