package cli

import (
	"bytes"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
)

func TestComposeLogPrefix(t *testing.T) {
	var out bytes.Buffer
	var mu sync.Mutex
	a := &prefixWriter{mu: &mu, out: &out, prefix: "[web] "}
	b := &prefixWriter{mu: &mu, out: &out, prefix: "[db]  "}
	_, _ = a.Write([]byte("hel"))
	_, _ = b.Write([]byte("ready\nlisten"))
	_, _ = a.Write([]byte("lo\n"))
	b.flush()
	want := "[db]  ready\n[web] hello\n[db]  listen\n"
	if out.String() != want {
		t.Fatalf("got %q, want %q", out.String(), want)
	}
}

// Each machine's lines come whole after its prefix, stderr's on stderr,
// with -t the time after the prefix; an unterminated line is ended.
func TestComposeLogLines(t *testing.T) {
	ms := []*types.Machine{{ID: "a", Name: "p-web-1"}, {ID: "b", Name: "p-db-1"}}
	var out, errb bytes.Buffer
	lp := newLogPrinter(&out, &errb, "p", ms, false, true)
	at := time.Date(2026, 12, 4, 18, 30, 0, 5, time.UTC)
	lp.print(ms[1], types.LogLine{Data: "ready\n", Stream: "stdout", Time: at})
	lp.print(ms[0], types.LogLine{Data: "oops\n", Stream: "stderr", Time: at})
	lp.print(ms[0], types.LogLine{Bytes: []byte("bin\xff"), Stream: "stdout", Time: at})
	if want := "db-1   | ready\nweb-1  | bin\xff\n"; out.String() != want {
		t.Errorf("stdout %q, want %q", out.String(), want)
	}
	if want := "web-1  | oops\n"; errb.String() != want {
		t.Errorf("stderr %q, want %q", errb.String(), want)
	}
	out.Reset()
	lp.stamps = true
	lp.print(ms[1], types.LogLine{Data: "up\n", Stream: "stdout", Time: at})
	if want := "db-1   | 2026-12-04T18:30:00.000000005Z up\n"; out.String() != want {
		t.Errorf("-t: %q, want %q", out.String(), want)
	}
}

func TestComposeScaleFlag(t *testing.T) {
	got, err := parseScale([]string{"web=3", "db=0"})
	if err != nil || got["web"] != 3 || got["db"] != 0 {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"web", "web=-1", "web=x"} {
		if _, err := parseScale([]string{bad}); err == nil || !strings.Contains(err.Error(), "SERVICE=N") {
			t.Errorf("--scale %s: %v", bad, err)
		}
	}
}

func TestComposeLogPrinter(t *testing.T) {
	ms := []*types.Machine{
		{ID: "a", Name: "shop-db-1"},
		{ID: "b", Name: "shop-web-12"},
		{ID: "c", Name: "custom"}, // container_name
	}
	var out bytes.Buffer
	lp := newLogPrinter(&out, &out, "shop", ms, true, true)
	for _, m := range ms {
		lp.line(m, "hi")
	}
	want := "\x1b[36mdb-1    | \x1b[0mhi\n\x1b[33mweb-12  | \x1b[0mhi\n\x1b[32mcustom  | \x1b[0mhi\n"
	if out.String() != want {
		t.Errorf("coloured prefixes:\n%q\nwant\n%q", out.String(), want)
	}
	out.Reset()
	newLogPrinter(&out, &out, "shop", ms, false, false).line(ms[0], "plain")
	if out.String() != "plain\n" {
		t.Errorf("--no-log-prefix: %q", out.String())
	}
	out.Reset()
	lp.status("web-12 exited with code 3")
	if out.String() != "web-12 exited with code 3\n" {
		t.Errorf("status line: %q", out.String())
	}
}

// TestComposeFileAndFollowFlags: compose's -f (before the verb) is the
// file, logs' -f is follow, as in docker compose.
func TestComposeFileAndFollowFlags(t *testing.T) {
	root := newRoot(&globals{out: &bytes.Buffer{}, err: &bytes.Buffer{}})
	cmd, args, err := root.Traverse([]string{"compose", "-f", "a.yaml", "-f", "b.yaml", "logs", "-f", "--tail", "3", "web"})
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Name() != "logs" {
		t.Fatalf("found %s", cmd.Name())
	}
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	files, _ := cmd.Parent().Flags().GetStringArray("file")
	follow, _ := cmd.Flags().GetBool("follow")
	if !slices.Equal(files, []string{"a.yaml", "b.yaml"}) || !follow || !slices.Equal(cmd.Flags().Args(), []string{"web"}) {
		t.Errorf("files %v follow %v args %v", files, follow, cmd.Flags().Args())
	}
}
