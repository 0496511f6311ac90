// Command testsummary reads `go test -json` on stdin and prints what
// `go test` would (package results, and the output of failing tests only),
// then counts: packages ok/failed, tests (and subtests) passed, failed and
// skipped, each skipped test with its reason, each failed test by name.
// scripts/test.sh pipes the suite through it.
//
//	go test -json ./... | go run ./internal/testutil/testsummary [-strict]
//
// With -strict any skip fails the run (exit 1) unless it is an opt-in
// (prereq.OptIn: a benchmark written as a test): on a machine the README
// set up, every prerequisite is installed, so a skip is a gap. It exits 1
// when a test or a build failed, 0 otherwise. Memory is bounded by the
// output of the tests running at once: a passing test's output is dropped
// when it ends.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // build-output, build-fail
}

// result is one test that did not pass.
type result struct {
	Package, Test, Reason string
}

// summary accumulates the run.
type summary struct {
	out io.Writer

	running map[string][]string // package + "\x00" + test → output lines
	pkgOut  map[string][]string // package-level output

	pkgOK, pkgFail, pkgNoTests, buildFail int
	passed                                int
	failed, skipped                       []result
}

func newSummary(out io.Writer) *summary {
	return &summary{out: out, running: map[string][]string{}, pkgOut: map[string][]string{}}
}

func key(pkg, test string) string { return pkg + "\x00" + test }

func (s *summary) add(e event) {
	switch e.Action {
	case "build-output":
		fmt.Fprint(s.out, e.Output)
		return
	case "build-fail":
		s.buildFail++
		return
	}
	if e.Test == "" {
		s.packageEvent(e)
		return
	}
	k := key(e.Package, e.Test)
	switch e.Action {
	case "output":
		s.running[k] = append(s.running[k], e.Output)
	case "pass":
		s.passed++
		delete(s.running, k)
	case "fail":
		s.failed = append(s.failed, result{Package: e.Package, Test: e.Test})
		fmt.Fprint(s.out, strings.Join(s.running[k], ""))
		delete(s.running, k)
	case "skip":
		s.skipped = append(s.skipped, result{Package: e.Package, Test: e.Test, Reason: skipReason(s.running[k])})
		delete(s.running, k)
	}
}

func (s *summary) packageEvent(e event) {
	switch e.Action {
	case "output":
		s.pkgOut[e.Package] = append(s.pkgOut[e.Package], e.Output)
	case "pass":
		s.pkgOK++
		fmt.Fprint(s.out, lastLine(s.pkgOut[e.Package], "ok"))
		delete(s.pkgOut, e.Package)
	case "skip":
		s.pkgNoTests++
		delete(s.pkgOut, e.Package)
	case "fail":
		s.pkgFail++
		// Tests still running when the package failed (a panic, a
		// timeout) show their output: it says where they were.
		var open []string
		for k := range s.running {
			if strings.HasPrefix(k, e.Package+"\x00") {
				open = append(open, k)
			}
		}
		sort.Strings(open)
		for _, k := range open {
			fmt.Fprint(s.out, strings.Join(s.running[k], ""))
			delete(s.running, k)
		}
		fmt.Fprint(s.out, strings.Join(s.pkgOut[e.Package], ""))
		delete(s.pkgOut, e.Package)
	}
}

// lastLine returns the last output line that starts with prefix.
func lastLine(lines []string, prefix string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], prefix) {
			return lines[i]
		}
	}
	return ""
}

// logLine is a t.Log/t.Skip line: indented "file.go:NN: message".
var logLine = regexp.MustCompile(`^\s+(\S+\.go:\d+: .*)$`)

// skipReason is the last logged line before "--- SKIP" (t.Skip's message).
func skipReason(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		if m := logLine.FindStringSubmatch(strings.TrimRight(lines[i], "\n")); m != nil {
			return m[1]
		}
	}
	return "(no reason given)"
}

// optIn reports whether a skip is an opt-in test not asked for.
func optIn(r result) bool { return strings.Contains(r.Reason, prereq.OptInPrefix) }

func short(pkg string) string {
	return strings.TrimPrefix(strings.TrimPrefix(pkg, "github.com/ferryvm/ferry"), "/")
}

// report prints the counts and lists and returns the exit status.
func (s *summary) report(strict bool) int {
	w := s.out
	var gaps, opt []result
	for _, r := range s.skipped {
		if optIn(r) {
			opt = append(opt, r)
		} else {
			gaps = append(gaps, r)
		}
	}
	fmt.Fprintf(w, "\ntest: packages: %d ok, %d failed, %d without tests", s.pkgOK, s.pkgFail, s.pkgNoTests)
	if s.buildFail > 0 {
		fmt.Fprintf(w, ", %d failed to build", s.buildFail)
	}
	fmt.Fprintf(w, "\ntest: tests (subtests included): %d passed, %d failed, %d skipped", s.passed, len(s.failed), len(gaps))
	if len(opt) > 0 {
		fmt.Fprintf(w, ", %d opt-in not run", len(opt))
	}
	fmt.Fprintln(w)
	list := func(title string, rs []result) {
		if len(rs) == 0 {
			return
		}
		sort.Slice(rs, func(i, j int) bool {
			if rs[i].Package != rs[j].Package {
				return rs[i].Package < rs[j].Package
			}
			return rs[i].Test < rs[j].Test
		})
		fmt.Fprintf(w, "test: %s:\n", title)
		for _, r := range rs {
			if r.Reason == "" {
				fmt.Fprintf(w, "  %s %s\n", short(r.Package), r.Test)
			} else {
				fmt.Fprintf(w, "  %s %s: %s\n", short(r.Package), r.Test, r.Reason)
			}
		}
	}
	list("skipped", gaps)
	list("opt-in, not run", opt)
	list("failed", s.failed)
	status := 0
	if len(s.failed) > 0 || s.pkgFail > 0 || s.buildFail > 0 {
		status = 1
	}
	if strict && len(gaps) > 0 {
		fmt.Fprintf(w, "test: strict (FERRY_TEST_STRICT=1): %d tests skipped on a machine the README set up; each prerequisite above must be installed by scripts/deps.sh and found by the test\n", len(gaps))
		status = 1
	}
	return status
}

func main() {
	strict := flag.Bool("strict", false, "fail when any test skips (opt-in tests excepted)")
	flag.Parse()
	s := newSummary(os.Stdout)
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// Not an event (go test's own messages, e.g. a build error
			// printed before -json took over): pass it on.
			fmt.Fprintln(s.out, sc.Text())
			continue
		}
		s.add(e)
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "testsummary: reading go test -json: %v\n", err)
		os.Exit(2)
	}
	os.Exit(s.report(*strict))
}
