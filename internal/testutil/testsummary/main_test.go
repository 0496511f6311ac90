package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// run feeds `go test -json` of testdata/fixture (a pass, a failure, three
// kinds of skip, subtests) through the summary.
func run(t *testing.T, strict bool) (string, int) {
	t.Helper()
	goBin := prereq.Tool(t, "go")
	cmd := exec.Command(goBin, "test", "-count=1", "-json", ".")
	cmd.Dir = "testdata/fixture"
	cmd.Env = append(cmd.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	raw, _ := cmd.Output() // exits 1: TestFail fails
	var out bytes.Buffer
	s := newSummary(&out)
	for _, line := range bytes.Split(raw, []byte("\n")) {
		var e event
		if json.Unmarshal(line, &e) == nil {
			s.add(e)
		}
	}
	code := s.report(strict)
	return out.String(), code
}

func TestCountsAndReasons(t *testing.T) {
	out, code := run(t, false)
	for _, want := range []string{
		"the failure message",
		"--- FAIL: TestFail",
		"test: packages: 0 ok, 1 failed, 0 without tests",
		"test: tests (subtests included): 3 passed, 1 failed, 2 skipped, 1 opt-in not run",
		"fixture TestSkipMissing: fixture_test.go:11: prereq: missing skopeo (not on PATH): run scripts/deps.sh (Debian package skopeo)",
		"fixture TestSubtests/skips: fixture_test.go:18: prereq: -short: boots a VM",
		"test: opt-in, not run:\n  fixture TestOptIn: fixture_test.go:14: prereq: opt-in: set FERRY_BENCH=1",
		"test: failed:\n  fixture TestFail\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "chatter") || strings.Contains(out, "strict") {
		t.Errorf("summary prints a passing test's output or a strict verdict:\n%s", out)
	}
	if code != 1 {
		t.Errorf("exit %d with a failed test, want 1", code)
	}
}

func TestStrictFailsOnSkips(t *testing.T) {
	out, code := run(t, true)
	if code != 1 || !strings.Contains(out, "test: strict (FERRY_TEST_STRICT=1): 2 tests skipped") {
		t.Errorf("strict: exit %d\n%s", code, out)
	}
	// Skips alone (no failure) fail a strict run and pass a normal one.
	s := newSummary(&bytes.Buffer{})
	s.add(event{Action: "output", Package: "p", Test: "T", Output: "    x_test.go:3: prereq: missing root (mounts): run as root\n"})
	s.add(event{Action: "skip", Package: "p", Test: "T"})
	s.add(event{Action: "skip", Package: "p", Test: "O"})
	s.skipped[1].Reason = prereq.OptInPrefix + "set X=1 to run it"
	if got := s.report(false); got != 0 {
		t.Errorf("skips only, not strict: exit %d, want 0", got)
	}
	if got := s.report(true); got != 1 {
		t.Errorf("skips only, strict: exit %d, want 1", got)
	}
	s = newSummary(&bytes.Buffer{})
	s.add(event{Action: "skip", Package: "p", Test: "O"})
	s.skipped[0].Reason = prereq.OptInPrefix + "set X=1 to run it"
	if got := s.report(true); got != 0 {
		t.Errorf("an opt-in skip only, strict: exit %d, want 0", got)
	}
}
