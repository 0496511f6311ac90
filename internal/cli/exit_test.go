package cli

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeDaemon answers every request on a unix socket with the error code
// the request's path names the kind of (…/not_found/…), and returns the
// socket's FERRY_HOST.
func fakeDaemon(t *testing.T, code string, status int) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "ferry.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "the daemon says " + code, "code": code})
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "unix://" + sock
}

// TestExitCodes checks the exit-status table of docs/cli.md against Main.
func TestExitCodes(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	for _, tc := range []struct {
		name string
		host string
		args []string
		want int
	}{
		{"unknown verb", "", []string{"frobnicate"}, 2},
		{"unknown flag", "", []string{"ps", "--no-such-flag"}, 2},
		{"wrong argument count", "", []string{"rename", "only-one"}, 2},
		{"bad flag value", "", []string{"ps", "--format", "xml"}, 2},
		{"bad -p", "", []string{"run", "-p", "a:b", "busybox"}, 2},
		{"daemon TCP API without a token", "", []string{"daemon", "--root", filepath.Join(root, "r"), "--socket", filepath.Join(root, "s"), "--api-addr", "127.0.0.1:0"}, 2},
		{"daemon says not found", fakeDaemon(t, "not_found", 404), []string{"inspect", "nope"}, 3},
		{"daemon says invalid argument", fakeDaemon(t, "invalid_argument", 400), []string{"inspect", "nope"}, 2},
		{"daemon says conflict", fakeDaemon(t, "conflict", 409), []string{"inspect", "nope"}, 1},
		{"daemon fails", fakeDaemon(t, "internal", 500), []string{"inspect", "nope"}, 1},
		{"no daemon", "unix://" + filepath.Join(root, "none.sock"), []string{"ps"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := tc.host
			if host == "" { // never the user's daemon
				host = "unix://" + filepath.Join(root, "unused.sock")
			}
			t.Setenv("FERRY_HOST", host)
			stderr := captureStderr(t, func() {
				if got := Main(ctx, tc.args); got != tc.want {
					t.Errorf("ferry %s: exit %d, want %d", strings.Join(tc.args, " "), got, tc.want)
				}
			})
			if !strings.HasPrefix(stderr, "ferry: ") || strings.Count(strings.TrimRight(stderr, "\n"), "\n") != 0 {
				t.Errorf("stderr %q: want one `ferry: …` line", stderr)
			}
		})
	}
}

// captureStderr runs f with os.Stderr redirected and returns what it wrote.
func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stderr
	os.Stderr = w
	done := make(chan string)
	go func() {
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				done <- b.String()
				return
			}
		}
	}()
	f()
	os.Stderr = old
	w.Close()
	return <-done
}
