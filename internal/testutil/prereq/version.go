package prereq

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// minimum is the least major version of a program tests can use, and how
// to read a copy's version.
type minimum struct {
	major int
	args  []string       // the arguments that print the version, talking to nothing
	re    *regexp.Regexp // its first group is the version, its major first
	why   string         // what the version brings, for the skip line
}

// minimums are the programs tests need at a least version. The docker CLI:
// internal/dockerapi serves Engine API 1.44 and later, which docker 25
// introduced (Debian 12's docker.io is 20.10, API 1.41).
var minimums = map[string]minimum{
	"docker": {major: 25, args: []string{"--version"}, re: regexp.MustCompile(`^Docker version (\d+\.[^\s,]*)`), why: "Engine API 1.44"},
}

// TooOldError says every copy of a program found is older than tests need.
type TooOldError struct {
	Name  string
	Major int      // the least major version
	Why   string   // what that version brings
	Found []string // each copy seen: path and version (or why it has none)
}

func (e *TooOldError) Error() string {
	return fmt.Sprintf("%s %d or later (%s); found %s", e.Name, e.Major, e.Why, strings.Join(e.Found, ", "))
}

func (e *TooOldError) Unwrap() error { return exec.ErrNotFound }

// lookVersioned returns the first copy of name, on PATH then in toolsDir,
// whose version is m's or later.
func lookVersioned(name string, m minimum) (string, error) {
	old := &TooOldError{Name: name, Major: m.major, Why: m.why}
	for _, p := range candidates(name) {
		v, major, err := version(p, m)
		switch {
		case err != nil:
			old.Found = append(old.Found, p+" ("+err.Error()+")")
		case major < m.major:
			old.Found = append(old.Found, p+" "+v)
		default:
			return p, nil
		}
	}
	if len(old.Found) == 0 {
		return "", fmt.Errorf("%s not found: %w", name, exec.ErrNotFound)
	}
	return "", old
}

// candidates lists every executable name on PATH, then in toolsDir, once
// each.
func candidates(name string) []string {
	var out []string
	seen := map[string]bool{}
	dirs := append(filepath.SplitList(os.Getenv("PATH")), toolsDir)
	for _, d := range dirs {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, name)
		real, err := filepath.EvalSymlinks(p)
		if err != nil || seen[real] || !isExecutable(real) {
			continue
		}
		seen[real] = true
		out = append(out, p)
	}
	return out
}

// version runs p to read its version and major number.
func version(p string, m minimum) (string, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, p, m.args...).Output()
	if err != nil {
		return "", 0, fmt.Errorf("%s %s: %w", filepath.Base(p), strings.Join(m.args, " "), err)
	}
	g := m.re.FindSubmatch(out)
	if g == nil {
		return "", 0, errors.New("no version in " + strconv.Quote(strings.TrimSpace(string(out))))
	}
	v := string(g[1])
	major, err := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	if err != nil {
		return v, 0, fmt.Errorf("version %q: %w", v, err)
	}
	return v, major, nil
}
