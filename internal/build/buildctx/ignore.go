package buildctx

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// IgnoreFile is the name of the ignore file at a context's root.
const IgnoreFile = ".dockerignore"

// Ignore decides which context paths are left out. The zero value (and
// nil) leaves out nothing.
type Ignore struct {
	pm *patternmatcher.PatternMatcher
}

// ParseIgnore reads .dockerignore patterns from r.
func ParseIgnore(r io.Reader) (*Ignore, error) {
	pats, err := ignorefile.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", IgnoreFile, err, errdefs.ErrInvalidArgument)
	}
	if len(pats) == 0 {
		return &Ignore{}, nil
	}
	pm, err := patternmatcher.New(pats)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", IgnoreFile, err, errdefs.ErrInvalidArgument)
	}
	return &Ignore{pm: pm}, nil
}

// IgnoreFor reads the ignore file of a context dir: the Dockerfile's own
// (<dockerfile>.dockerignore beside it) when it exists, as BuildKit does,
// else <dir>/.dockerignore. Neither existing means nothing is ignored.
func IgnoreFor(dir, dockerfile string) (*Ignore, error) {
	var cands []string
	if dockerfile != "" {
		cands = append(cands, dockerfile+IgnoreFile)
	}
	cands = append(cands, filepath.Join(dir, IgnoreFile))
	for _, p := range cands {
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return ParseIgnore(f)
	}
	return &Ignore{}, nil
}

// match tracks one directory's match state for its children.
type match struct {
	info patternmatcher.MatchInfo
}

// Excluded reports whether rel (slash-separated, relative to the context
// root) is left out, given its parent's state; it returns the state to
// pass to rel's children.
func (ig *Ignore) excluded(rel string, parent match) (bool, match, error) {
	if ig == nil || ig.pm == nil {
		return false, match{}, nil
	}
	m, info, err := ig.pm.MatchesUsingParentResults(rel, parent.info)
	if err != nil {
		return false, match{}, fmt.Errorf("%s: %w: %w", IgnoreFile, err, errdefs.ErrInvalidArgument)
	}
	return m, match{info: info}, nil
}

// canSkipDir reports whether an excluded directory can be skipped whole:
// only when no pattern re-includes something ("!pattern").
func (ig *Ignore) canSkipDir() bool { return ig == nil || ig.pm == nil || !ig.pm.Exclusions() }

// Excludes reports whether rel is left out (for one-off checks).
func (ig *Ignore) Excludes(rel string) bool {
	if ig == nil || ig.pm == nil {
		return false
	}
	rel = strings.TrimPrefix(path.Clean("/"+rel), "/")
	m, err := ig.pm.MatchesOrParentMatches(rel) //nolint:staticcheck // one-off check; walks use MatchesUsingParentResults
	return err == nil && m
}
