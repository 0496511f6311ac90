package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/image"
)

func TestSplitRef(t *testing.T) {
	for in, want := range map[string][2]string{
		"docker.io/library/alpine:3.20":                  {"alpine", "3.20"},
		"docker.io/me/app:1":                             {"me/app", "1"},
		"localhost:5000/x/y:latest":                      {"localhost:5000/x/y", "latest"},
		"localhost:5000/x/y@sha256:" + hex64('a'):        {"localhost:5000/x/y", "sha256:" + hex64('a')},
		"docker.io/library/busybox@sha256:" + hex64('b'): {"busybox", "sha256:" + hex64('b')},
		"localhost:5000/untagged":                        {"localhost:5000/untagged", "<none>"},
	} {
		repo, tag := splitRef(in)
		if repo != want[0] || tag != want[1] {
			t.Errorf("splitRef(%q) = %q, %q; want %q, %q", in, repo, tag, want[0], want[1])
		}
	}
}

func hex64(c byte) string { return strings.Repeat(string(c), 64) }

func TestImageTable(t *testing.T) {
	id := v1.Hash{Algorithm: "sha256", Hex: "0123456789ab" + hex64('c')[:52]}
	list := []image.Summary{
		{ID: id, RepoTags: []string{"docker.io/library/alpine:latest", "localhost:5000/alp:1"},
			RepoDigests: []string{"docker.io/library/alpine@sha256:" + hex64('d')},
			Size:        3_620_000, Created: time.Now().Add(-49 * time.Hour)},
		{ID: v1.Hash{Algorithm: "sha256", Hex: hex64('e')}, Size: 999},
	}
	var b bytes.Buffer
	if err := printImageTable(&b, list, false, true); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("want header + 3 rows:\n%s", b.String())
	}
	for i, want := range []string{
		"REPOSITORY TAG DIGEST IMAGE ID CREATED SIZE",
		"alpine latest sha256:" + hex64('d') + " 0123456789ab 2 days ago 3.6MB",
		"localhost:5000/alp 1 <none> 0123456789ab 2 days ago 3.6MB",
		"<none> <none> <none> eeeeeeeeeeee N/A 999B",
	} {
		if got := strings.Join(strings.Fields(lines[i]), " "); got != want {
			t.Errorf("line %d = %q, want %q", i, got, want)
		}
	}
}

func TestFilterImages(t *testing.T) {
	list := []image.Summary{
		{ID: v1.Hash{Algorithm: "sha256", Hex: hex64('1')}, RepoTags: []string{"docker.io/library/alpine:latest"}},
		{ID: v1.Hash{Algorithm: "sha256", Hex: hex64('2')}, RepoTags: []string{"docker.io/library/alpine:3.20"}},
		{ID: v1.Hash{Algorithm: "sha256", Hex: hex64('3')}, RepoTags: []string{"docker.io/library/busybox:latest"}},
	}
	for pattern, want := range map[string]int{"alpine": 2, "alpine:3.20": 1, "docker.io/library/busybox": 1, "nginx": 0} {
		if got := len(filterImages(list, pattern)); got != want {
			t.Errorf("filterImages(%q) kept %d, want %d", pattern, got, want)
		}
	}
}

func TestStatusText(t *testing.T) {
	if statusText(image.StateExists, false) != "Already exists" || statusText(image.StateExists, true) != "Layer already exists" ||
		statusText(image.StateDone, false) != "Pull complete" || statusText(image.StateDone, true) != "Pushed" {
		t.Error("docker wording changed")
	}
	var b bytes.Buffer
	v := newProgressView(&b, false, false)
	d := v1.Hash{Algorithm: "sha256", Hex: hex64('f')}
	for _, st := range []image.State{image.StateWaiting, image.StateDownloading, image.StateDownloading, image.StateDone} {
		v.update(image.Progress{Digest: d, Kind: "layer", State: st})
	}
	v.update(image.Progress{Digest: d, Kind: "config", State: image.StateDone})
	v.finish(true)
	if want := "ffffffffffff: Waiting\nffffffffffff: Downloading\nffffffffffff: Pull complete\n"; b.String() != want {
		t.Errorf("plain progress = %q, want %q", b.String(), want)
	}
}
