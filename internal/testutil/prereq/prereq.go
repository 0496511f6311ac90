// Package prereq is how ferry's tests check what they need from the host:
// root, a program, a device, a fresh network namespace, a run without
// -short, an opt-in. Each check returns when the prerequisite is there and
// otherwise skips the test with one line that says what is missing and how
// to get it (for a program: the Debian package scripts/deps.sh installs).
// Tests do not call t.Skip themselves; package vmprereq adds the checks of
// tests that boot VMs (QEMU, a guest kernel, ferry-init built from the tree).
//
// Every skip line starts with Prefix, then one of:
//
//	prereq: missing <what>: <how to get it>
//	prereq: -short: <what> (not run with -short)
//	prereq: opt-in: set <ENV> to run <what>
//
// scripts/test.sh counts the skips and lists each with its line. With
// FERRY_TEST_STRICT=1 (what .ci/run sets) any skip but an opt-in one fails
// the run: on a machine the README set up, every prerequisite is there.
package prereq

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// The skip line's prefixes, parsed by the test summary (scripts/test.sh).
const (
	Prefix        = "prereq: "
	MissingPrefix = Prefix + "missing "
	ShortPrefix   = Prefix + "-short: "
	OptInPrefix   = Prefix + "opt-in: "
)

// ToolsDir is where scripts/deps.sh installs the Go-based peers (crane,
// oras); Tool looks there after PATH.
const ToolsDir = "/usr/local/lib/ferry/tools"

// Missing skips t: what is missing and how to get it.
func Missing(t testing.TB, what, remedy string) {
	t.Helper()
	t.Skip(MissingPrefix + what + ": " + remedy)
}

// Check skips t, with err as what is missing, when err is not nil.
func Check(t testing.TB, err error, remedy string) {
	t.Helper()
	if err != nil {
		Missing(t, err.Error(), remedy)
	}
}

// Short skips t under -short: what (e.g. "boots a VM") is too slow for it.
func Short(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skip(ShortPrefix + what + " (not run with -short)")
	}
}

// OptIn skips t unless the environment variable env is set: tests that run
// only when asked (benchmarks written as tests).
func OptIn(t testing.TB, env, what string) {
	t.Helper()
	if os.Getenv(env) == "" {
		t.Skip(OptInPrefix + "set " + env + " to run " + what)
	}
}

// Root skips t unless it runs as root; why says what root is for.
func Root(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "root ("+why+")", "run the tests as root, as scripts/test.sh does")
	}
}

// File skips t unless path exists.
func File(t testing.TB, path, remedy string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		Missing(t, path, remedy)
	}
}

// Tool returns the path of program name, or skips t naming the package
// that provides it. It looks on PATH, then in ToolsDir, then (PostgreSQL's
// server programs) in /usr/lib/postgresql/<version>/bin. A program tests
// need at a least version (the docker CLI: 25, Engine API 1.44) is found
// only at that version or later; the skip line names the older ones seen.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := LookTool(name)
	if err != nil {
		var old *TooOldError
		if errors.As(err, &old) {
			Missing(t, old.Error(), Remedy(name))
		}
		Missing(t, name+" (not on PATH or in "+ToolsDir+")", Remedy(name))
	}
	return p
}

// Tools skips t unless every named program is there (see Tool).
func Tools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		Tool(t, n)
	}
}

// QEMU returns the path of qemu-system-x86_64 (see Tool).
func QEMU(t testing.TB) string {
	t.Helper()
	return Tool(t, "qemu-system-x86_64")
}

// toolsDir is ToolsDir; tests point it elsewhere.
var toolsDir = ToolsDir

// LookTool finds program name as Tool does, without a test. For a program
// with a least version it returns the first copy, on PATH then in
// ToolsDir, at that version or later, and a *TooOldError when every copy
// found is older.
func LookTool(name string) (string, error) {
	if m, ok := minimums[name]; ok {
		return lookVersioned(name, m)
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if p := filepath.Join(toolsDir, name); isExecutable(p) {
		return p, nil
	}
	if pg, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name); len(pg) > 0 {
		sort.Strings(pg)
		return pg[len(pg)-1], nil
	}
	return "", fmt.Errorf("%s not found: %w", name, exec.ErrNotFound)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Loop skips t unless it can attach loop devices and mount them: root,
// /dev/loop-control, losetup, mount and umount.
func Loop(t testing.TB) {
	t.Helper()
	Root(t, "to attach loop devices and mount them")
	File(t, "/dev/loop-control", "load the loop module (modprobe loop) or run on a host with loop devices")
	Tools(t, "losetup", "mount", "umount")
}

// TUN skips t unless /dev/net/tun exists (TAP devices).
func TUN(t testing.TB) {
	t.Helper()
	File(t, "/dev/net/tun", "load the tun module (modprobe tun) or run on a host with /dev/net/tun")
}

// PTY skips t unless a pseudo-terminal can be opened (/dev/ptmx).
func PTY(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		Missing(t, "a pseudo-terminal ("+err.Error()+")", "mount devpts at /dev/pts (any normal Linux host has it)")
	}
	f.Close()
}

// NetNSPrefix starts the name of every network namespace NetNS creates.
const NetNSPrefix = "ferry-test-"

var (
	netnsSeq   atomic.Int64
	netnsSweep sync.Once
)

// sweepNetNS deletes the namespaces NetNS made in test binaries that are
// gone (killed by a timeout or a signal before their cleanups ran), so
// they do not pile up across runs. A namespace of a live process is kept.
func sweepNetNS(ip string) {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), NetNSPrefix)
		if !ok {
			continue
		}
		pid, _, _ := strings.Cut(rest, "-")
		if _, err := strconv.Atoi(pid); err != nil {
			continue
		}
		if _, err := os.Stat("/proc/" + pid); err == nil {
			continue
		}
		exec.Command(ip, "netns", "del", e.Name()).Run()
	}
}

// NetNS creates a fresh named network namespace with lo up, deleted when
// the test ends (which removes every link and nft table inside it), and
// returns its name: NetNSPrefix, the test binary's PID and a sequence
// number, so it collides with nothing a user or another test made. The
// first call also deletes namespaces left by test binaries that died. It
// skips t without root or ip, and fails it when the namespace cannot be
// made.
func NetNS(t testing.TB) string {
	t.Helper()
	Root(t, "to create network namespaces")
	ip := Tool(t, "ip")
	netnsSweep.Do(func() { sweepNetNS(ip) })
	name := fmt.Sprintf("%s%d-%d", NetNSPrefix, os.Getpid(), netnsSeq.Add(1))
	if out, err := exec.Command(ip, "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(ip, "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	if out, err := exec.Command(ip, "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s link set lo up: %v: %s", name, err, out)
	}
	return name
}

// Remedy says how to get program name.
func Remedy(name string) string {
	if r, ok := sources[name]; ok {
		return r.remedy()
	}
	return "install it and add it to scripts/deps.sh"
}

// source is where a program comes from.
type source struct {
	deb   string // Debian package scripts/deps.sh installs
	apt   string // Debian package scripts/deps.sh does not install yet
	goPkg string // go install path scripts/deps.sh installs into ToolsDir
	// goBuild is a module scripts/deps.sh builds from its source into
	// ToolsDir (go install refuses it); manual then says what is needed.
	goBuild string
	manual  string // anything else
}

func (s source) remedy() string {
	switch {
	case s.deb != "":
		return "run scripts/deps.sh (Debian package " + s.deb + ")"
	case s.apt != "":
		return "apt-get install " + s.apt + " (and add it to scripts/deps.sh with the test that needs it)"
	case s.goPkg != "":
		return "run scripts/deps.sh (go install " + s.goPkg + " into " + ToolsDir + ")"
	case s.goBuild != "":
		return "run scripts/deps.sh (it builds " + s.manual + " from " + s.goBuild + " into " + ToolsDir + ")"
	}
	return s.manual
}

// sources maps the programs tests use to where they come from. A test in
// this package checks every deb entry against scripts/deps.sh.
var sources = map[string]source{
	"go":                 {manual: "install Go at /usr/local/go (https://go.dev/dl) and put /usr/local/go/bin on PATH"},
	"qemu-system-x86_64": {deb: "qemu-system-x86"},
	"mkfs.ext4":          {deb: "e2fsprogs"},
	"e2fsck":             {deb: "e2fsprogs"},
	"debugfs":            {deb: "e2fsprogs"},
	"dumpe2fs":           {deb: "e2fsprogs"},
	"tune2fs":            {deb: "e2fsprogs"},
	"resize2fs":          {deb: "e2fsprogs"},
	"mkfs.xfs":           {deb: "xfsprogs"},
	"mkfs.btrfs":         {deb: "btrfs-progs"},
	"ip":                 {deb: "iproute2"},
	"nft":                {deb: "nftables"},
	"iptables":           {deb: "iptables"},
	"dig":                {deb: "bind9-dnsutils"},
	"ping":               {deb: "iputils-ping"},
	"arping":             {deb: "iputils-arping"},
	"iperf3":             {deb: "iperf3"},
	"busybox":            {deb: "busybox-static"},
	"skopeo":             {deb: "skopeo"},
	"umoci":              {deb: "umoci"},
	"docker-registry":    {deb: "docker-registry"},
	"podman":             {deb: "podman"},
	"initdb":             {deb: "postgresql"},
	"pg_ctl":             {deb: "postgresql"},
	"postgres":           {deb: "postgresql"},
	"psql":               {deb: "postgresql"},
	"cpio":               {deb: "cpio"},
	"zstd":               {deb: "zstd"},
	"jq":                 {deb: "jq"},
	"curl":               {deb: "curl"},
	"git":                {deb: "git"},
	"make":               {deb: "make"},
	"gcc":                {deb: "build-essential"},
	"depmod":             {deb: "kmod"},
	"crane":              {goPkg: "github.com/google/go-containerregistry/cmd/crane"},
	"oras":               {goPkg: "oras.land/oras/cmd/oras"},
	"buildah":            {deb: "buildah"},
	"runc":               {deb: "runc"},
	"docker":             {goBuild: "github.com/docker/cli", manual: "a docker CLI 25 or later (Engine API 1.44+; Debian 12's docker.io 20.10 is too old)"},
	"docker-compose":     {goBuild: "github.com/docker/compose/v5", manual: "docker compose v5.6.0"},
	"weed":               {goBuild: "github.com/seaweedfs/seaweedfs", manual: "SeaweedFS's weed, the S3 server of the registry's replica tests,"},
	"cryptsetup":         {deb: "cryptsetup-bin"},
	"fio":                {deb: "fio"},
	"bash":               {manual: "install bash (Debian package bash, essential)"},
	"sh":                 {manual: "install a POSIX shell at /bin/sh (Debian package dash, essential)"},
	"losetup":            {manual: "install util-linux's losetup (Debian package mount, essential)"},
	"mount":              {manual: "install util-linux's mount (Debian package mount, essential)"},
	"umount":             {manual: "install util-linux's umount (Debian package mount, essential)"},
	"nsenter":            {manual: "install util-linux (Debian package util-linux, essential)"},
	"true":               {manual: "install coreutils (essential)"},
}

// packages returns the Debian packages the sources table says
// scripts/deps.sh installs (its test checks deps.sh agrees).
func packages() []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range sources {
		if s.deb != "" && !seen[s.deb] {
			seen[s.deb] = true
			out = append(out, s.deb)
		}
	}
	sort.Strings(out)
	return out
}

// goPackages returns the go install paths and the built modules the
// sources table names.
func goPackages() []string {
	var out []string
	for _, s := range sources {
		if s.goPkg != "" {
			out = append(out, s.goPkg)
		}
		if s.goBuild != "" {
			out = append(out, s.goBuild)
		}
	}
	sort.Strings(out)
	return out
}
