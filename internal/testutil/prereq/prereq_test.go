package prereq

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// fakeTB records a skip instead of ending the test, so the checks' skips
// can be tested without this package's own tests skipping.
type fakeTB struct {
	testing.TB
	skipped string
}

type skipped struct{}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skip(args ...any) {
	f.skipped = fmt.Sprint(args...)
	panic(skipped{})
}

// skipOf runs check against a fakeTB and returns its skip line ("" when it
// did not skip).
func skipOf(check func(testing.TB)) (line string) {
	f := &fakeTB{}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(skipped); !ok {
				panic(r)
			}
			line = f.skipped
		}
	}()
	check(f)
	return ""
}

func TestToolMissingSaysHowToGetIt(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for tool, want := range map[string]string{
		"skopeo":                "run scripts/deps.sh (Debian package skopeo)",
		"qemu-system-x86_64":    "Debian package qemu-system-x86",
		"cryptsetup":            "Debian package cryptsetup-bin",
		"docker":                "docker CLI 25 or later",
		"no-such-tool-anywhere": "add it to scripts/deps.sh",
	} {
		line := skipOf(func(tb testing.TB) { Tool(tb, tool) })
		if !strings.HasPrefix(line, MissingPrefix+tool) || !strings.Contains(line, want) {
			t.Errorf("Tool(%s) skip line %q, want %q… containing %q", tool, line, MissingPrefix+tool, want)
		}
	}
}

func TestToolFound(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "ferry-prereq-tool")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	var got string
	if line := skipOf(func(tb testing.TB) { got = Tool(tb, "ferry-prereq-tool") }); line != "" || got != exe {
		t.Errorf("Tool = %q, skip %q; want %s", got, line, exe)
	}
}

func TestShortOptInMissingLines(t *testing.T) {
	t.Setenv("FERRY_PREREQ_TEST_OPTIN", "")
	if line := skipOf(func(tb testing.TB) { OptIn(tb, "FERRY_PREREQ_TEST_OPTIN", "the thing") }); line != OptInPrefix+"set FERRY_PREREQ_TEST_OPTIN to run the thing" {
		t.Errorf("OptIn skip line %q", line)
	}
	t.Setenv("FERRY_PREREQ_TEST_OPTIN", "1")
	if line := skipOf(func(tb testing.TB) { OptIn(tb, "FERRY_PREREQ_TEST_OPTIN", "the thing") }); line != "" {
		t.Errorf("OptIn skipped with the variable set: %q", line)
	}
	if line := skipOf(func(tb testing.TB) { File(tb, "/nonexistent/ferry", "make it") }); line != MissingPrefix+"/nonexistent/ferry: make it" {
		t.Errorf("File skip line %q", line)
	}
	if line := skipOf(func(tb testing.TB) { Short(tb, "boots a VM") }); testing.Short() != (line == ShortPrefix+"boots a VM (not run with -short)") {
		t.Errorf("Short skip line %q with -short=%v", line, testing.Short())
	}
	if line := skipOf(func(tb testing.TB) { Root(tb, "mounts") }); (os.Geteuid() == 0) != (line == "") || (line != "" && !strings.HasPrefix(line, MissingPrefix+"root (mounts)")) {
		t.Errorf("Root skip line %q as uid %d", line, os.Geteuid())
	}
}

// TestSourcesMatchDeps: every Debian package and go-installed peer the
// skip lines promise scripts/deps.sh installs is in scripts/deps.sh.
func TestSourcesMatchDeps(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	deps, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "..", "scripts", "deps.sh"))
	if err != nil {
		t.Fatal(err)
	}
	words := map[string]bool{}
	for _, w := range strings.Fields(string(deps)) {
		words[w] = true
		w, _, _ = strings.Cut(w, "@")
		words[w] = true
	}
	for _, p := range packages() {
		if !words[p] {
			t.Errorf("sources says scripts/deps.sh installs Debian package %s; it does not", p)
		}
	}
	for _, p := range goPackages() {
		if !words[p] {
			t.Errorf("sources says scripts/deps.sh go-installs %s; it does not", p)
		}
	}
}

func TestNetNS(t *testing.T) {
	Root(t, "to create network namespaces")
	var name string
	t.Run("create", func(t *testing.T) {
		name = NetNS(t)
		if _, err := os.Stat("/run/netns/" + name); err != nil {
			t.Fatalf("netns %s not there: %v", name, err)
		}
		if !strings.HasPrefix(name, NetNSPrefix) {
			t.Errorf("netns name %q lacks %q", name, NetNSPrefix)
		}
	})
	if _, err := os.Stat("/run/netns/" + name); err == nil {
		t.Errorf("netns %s still there after its test ended", name)
	}
}

// TestSweepNetNS: a namespace named for a test binary that is gone is
// deleted; one named for a live process (this one) is kept.
func TestSweepNetNS(t *testing.T) {
	Root(t, "to create network namespaces")
	ip := Tool(t, "ip")
	// A PID above the kernel's pid_max cannot be running.
	dead := fmt.Sprintf("%s%d-1", NetNSPrefix, 1<<23)
	live := fmt.Sprintf("%s%d-sweep", NetNSPrefix, os.Getpid())
	for _, n := range []string{dead, live} {
		if out, err := exec.Command(ip, "netns", "add", n).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", n, err, out)
		}
		t.Cleanup(func() { exec.Command(ip, "netns", "del", n).Run() })
	}
	sweepNetNS(ip)
	if _, err := os.Stat("/run/netns/" + dead); err == nil {
		t.Errorf("netns %s of a dead test binary is still there", dead)
	}
	if _, err := os.Stat("/run/netns/" + live); err != nil {
		t.Errorf("netns %s of a live process was deleted: %v", live, err)
	}
}

// fakeDocker writes a docker in a new directory that prints what Debian's
// or Docker's docker --version prints for version v, and returns the
// directory.
func fakeDocker(t *testing.T, v string) string {
	t.Helper()
	dir := t.TempDir()
	script := "#!/bin/sh\n[ \"$1\" = --version ] || exit 3\necho 'Docker version " + v + ", build 297e128'\n"
	if err := os.WriteFile(filepath.Join(dir, "docker"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestToolVersion: a docker CLI older than 25 (Debian 12's docker.io) is
// not found, and the skip line names it; a newer one later on PATH or in
// ToolsDir is.
func TestToolVersion(t *testing.T) {
	old, newer := fakeDocker(t, "20.10.24+dfsg1"), fakeDocker(t, "28.5.2")
	empty := t.TempDir()
	for _, tc := range []struct {
		name, path, tools string
		want              string // the path found; "" when it skips
		skip              string // in the skip line
	}{
		{name: "old only", path: old, tools: empty,
			skip: "docker 25 or later (Engine API 1.44); found " + filepath.Join(old, "docker") + " 20.10.24+dfsg1: run scripts/deps.sh (it builds a docker CLI 25 or later"},
		{name: "new on PATH", path: newer, tools: empty, want: filepath.Join(newer, "docker")},
		{name: "new after old on PATH", path: old + ":" + newer, tools: empty, want: filepath.Join(newer, "docker")},
		{name: "new in ToolsDir", path: old, tools: newer, want: filepath.Join(newer, "docker")},
		{name: "none", path: empty, tools: empty, skip: "docker (not on PATH or in " + ToolsDir + ")"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PATH", tc.path)
			defer func(d string) { toolsDir = d }(toolsDir)
			toolsDir = tc.tools
			var got string
			line := skipOf(func(tb testing.TB) { got = Tool(tb, "docker") })
			if tc.want != "" && (got != tc.want || line != "") {
				t.Errorf("Tool(docker) = %q, skip %q; want %s", got, line, tc.want)
			}
			if tc.skip != "" && !strings.Contains(line, MissingPrefix+tc.skip) {
				t.Errorf("Tool(docker) = %q, skip %q; want a skip with %q", got, line, tc.skip)
			}
		})
	}
}

// TestDockerOnThisHost: the docker CLI the tests would use here reads as
// 25 or later (on a fresh Debian 12, scripts/deps.sh builds it).
func TestDockerOnThisHost(t *testing.T) {
	p := Tool(t, "docker")
	v, major, err := version(p, minimums["docker"])
	if err != nil || major < 25 {
		t.Fatalf("%s: version %q (major %d), %v", p, v, major, err)
	}
	t.Logf("%s: docker %s", p, v)
}
