package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
)

const composeShop = `
name: shop
services:
  web:
    image: busybox:vm
    command: ["sleep", "1000"]
    environment:
      GREETING: ${GREETING}
    depends_on: [db, cache]
  db:
    image: busybox:vm
    command: ["sh", "-c", "[ -f /data/index.html ] || cat /proc/sys/kernel/random/uuid > /data/index.html; exec httpd -f -p 80 -h /data"]
    volumes: ["dbdata:/data"]
  cache:
    image: busybox:vm
    command: ["sh", "-c", "mkdir -p /www && echo cache > /www/index.html && exec httpd -f -p 80 -h /www"]
    networks:
      default:
        aliases: [kv]
  tools:
    image: busybox:vm
    command: ["sleep", "1000"]
    profiles: [debug]
volumes:
  dbdata: {}
`

// TestComposeEndToEnd brings a three-service project up on real VMs: web
// reaches db and cache by service name (and alias), .env interpolates, a
// second up recreates only what changed, --scale adds replicas, the named
// volume keeps db's data across down/up and goes with down -v, and
// nothing of the project is left after down.
func TestComposeEndToEnd(t *testing.T) {
	e := vmEnv(t)
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(file, []byte(composeShop), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("GREETING=hello-from-env\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	compose := func(args ...string) string { return e.ok(append([]string{"compose", "-f", file}, args...)...) }
	t.Cleanup(func() { e.run(nil, "compose", "-f", file, "down", "-v") })
	machines := func() map[string]*types.Machine {
		var ms []*types.Machine
		if err := json.Unmarshal([]byte(compose("ps", "-a", "--format", "json")), &ms); err != nil {
			t.Fatal(err)
		}
		out := map[string]*types.Machine{}
		for _, m := range ms {
			out[m.Name] = m
		}
		return out
	}
	get := func(url string) string {
		return e.run(nil, "exec", "--app", "shop", "shop-web-1", "timeout", "5", "wget", "-qO-", url).stdout
	}

	compose("up", "-d")
	ms := machines()
	if names := slices.Sorted(mapKeysOf(ms)); !slices.Equal(names, []string{"shop-cache-1", "shop-db-1", "shop-web-1"}) {
		t.Fatalf("machines %v: want web, db and cache (tools is in a profile)", names)
	}
	e.eventually("web reaches db by name", 3*time.Minute, func() bool { return len(strings.TrimSpace(get("http://db/"))) == 36 })
	dbData := get("http://db/")
	e.eventually("web reaches cache by alias", time.Minute, func() bool { return get("http://kv/") == "cache\n" })
	if got := get("http://cache/"); got != "cache\n" {
		t.Errorf("web -> cache by service name: %q", got)
	}
	if env := e.ok("exec", "--app", "shop", "shop-web-1", "sh", "-c", "echo $GREETING"); env != "hello-from-env\n" {
		t.Errorf(".env interpolation: GREETING=%q", env)
	}

	// Unchanged: nothing is recreated. Scaled: only new replicas appear.
	compose("up", "-d", "--scale", "cache=2")
	again := machines()
	for _, n := range []string{"shop-web-1", "shop-db-1", "shop-cache-1"} {
		if again[n] == nil || again[n].ID != ms[n].ID {
			t.Errorf("second up recreated %s", n)
		}
	}
	if again["shop-cache-2"] == nil {
		t.Errorf("--scale cache=2: machines %v", slices.Sorted(mapKeysOf(again)))
	}
	// A changed web is recreated; db and cache keep running.
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("GREETING=changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	compose("up", "-d")
	third := machines()
	if third["shop-web-1"] == nil || third["shop-web-1"].ID == ms["shop-web-1"].ID || third["shop-db-1"].ID != ms["shop-db-1"].ID {
		t.Errorf("recreate on change: web %v db %v", third["shop-web-1"], third["shop-db-1"])
	}
	if third["shop-cache-2"] != nil {
		t.Error("up without --scale kept shop-cache-2")
	}
	if env := e.ok("exec", "--app", "shop", "shop-web-1", "sh", "-c", "echo $GREETING"); env != "changed\n" {
		t.Errorf("recreated web: GREETING=%q", env)
	}

	// The named volume outlives down; down -v removes it.
	compose("down")
	if left := machines(); len(left) != 0 {
		t.Fatalf("after down: %v", slices.Sorted(mapKeysOf(left)))
	}
	compose("up", "-d", "db", "web", "cache")
	e.eventually("db serves its data again", 3*time.Minute, func() bool { return get("http://db/") != "" })
	if got := get("http://db/"); got != dbData {
		t.Errorf("db data after down/up: %q, want %q", got, dbData)
	}
	compose("down", "-v")
	if out := e.ok("volume", "ls", "--app", "shop"); strings.Contains(out, "shop_dbdata") {
		t.Errorf("down -v left the volume:\n%s", out)
	}
	if out := e.ok("network", "ls"); strings.Contains(out, "shop_default") {
		t.Errorf("down left the network:\n%s", out)
	}
	if out := e.ok("ps", "-a", "--app", "shop"); strings.Count(out, "\n") > 1 {
		t.Errorf("down left machines:\n%s", out)
	}
}

func mapKeysOf[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
