package cli

import (
	"bytes"
	"strings"
	"sync"
	"testing"
)

func TestComposeLogPrefix(t *testing.T) {
	var out bytes.Buffer
	var mu sync.Mutex
	a := &prefixWriter{mu: &mu, out: &out, prefix: "p-web-1 | "}
	b := &prefixWriter{mu: &mu, out: &out, prefix: "p-db-1  | "}
	_, _ = a.Write([]byte("hel"))
	_, _ = b.Write([]byte("ready\nlisten"))
	_, _ = a.Write([]byte("lo\n"))
	b.flush()
	want := "p-db-1  | ready\np-web-1 | hello\np-db-1  | listen\n"
	if out.String() != want {
		t.Fatalf("got %q, want %q", out.String(), want)
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
