package dockerfile

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Options are the inputs of a build that shape its plan.
type Options struct {
	// BuildArgs are --build-arg values (KEY=VALUE; a key without a value
	// in the CLI is resolved there from its environment).
	BuildArgs map[string]string
	// Target names the stage to build ("" builds the last stage).
	Target string
	// Platform is the target (and build) platform; zero means linux/amd64.
	Platform v1.Platform
}

// File is a parsed Dockerfile reduced to the stages its target needs.
type File struct {
	// Stages are the stages to build, each after every stage it reads;
	// the target is last.
	Stages []*Stage
	// Target is the stage the build produces.
	Target *Stage
	// Global is the scope of the ARGs before the first FROM (with the
	// automatic platform args), which stages can import with ARG NAME.
	Global *Env
	// Escape is the file's escape character (the escape directive).
	Escape rune
	// Warnings are BuildKit's parser warnings (empty continuation lines).
	Warnings []string

	opts Options
}

// Stage is one FROM block.
type Stage struct {
	// Index is the stage's position in the file (COPY --from=0 names it).
	Index int
	// Name is the "AS name" in lower case ("" when unnamed).
	Name string
	// Base is the expanded FROM argument: an image reference, "scratch",
	// or the name of an earlier stage (then BaseStage is set).
	Base      string
	BaseStage *Stage
	// Platform is the expanded --platform flag ("" when absent).
	Platform string
	// Line is the line of the FROM instruction.
	Line int
	// Deps are the other stages this one reads (base, COPY --from,
	// RUN --mount from=).
	Deps []*Stage

	commands []instructions.Command
	file     *File
}

// String names the stage for messages: its name, or "stage N".
func (s *Stage) String() string {
	if s.Name != "" {
		return s.Name
	}
	return "stage " + strconv.Itoa(s.Index)
}

// Scratch reports whether the stage starts from an empty filesystem.
func (s *Stage) Scratch() bool { return s.BaseStage == nil && s.Base == "scratch" }

// ErrSyntax is wrapped by every error about the Dockerfile itself; the
// message starts with "Dockerfile:LINE:" when the line is known.
var ErrSyntax = errors.New("dockerfile")

// Parse reads src and plans the build of opts.Target.
func Parse(src []byte, opts Options) (*File, error) {
	if len(bytes.TrimSpace(src)) == 0 {
		return nil, bad(nil, "the Dockerfile is empty")
	}
	res, err := parser.Parse(bytes.NewReader(src))
	if err != nil {
		return nil, located(err)
	}
	f := &File{Escape: res.EscapeToken, opts: opts}
	for _, w := range res.Warnings {
		f.Warnings = append(f.Warnings, w.Short)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, located(err)
	}
	if len(stages) == 0 {
		return nil, bad(nil, "the Dockerfile has no FROM: nothing to build")
	}
	lex := shell.NewLex(f.Escape)
	target := opts.Target
	if target == "" {
		target = stages[len(stages)-1].Name
	}
	f.Global = platformArgs(opts.Platform, target)
	for k, v := range opts.BuildArgs {
		if f.Global.has(k) {
			f.Global.Set(k, v) // a build arg overrides an automatic one
		}
	}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if v, ok := opts.BuildArgs[kv.Key]; ok {
				f.Global.Set(kv.Key, v)
				continue
			}
			if kv.Value == nil {
				f.Global.declare(kv.Key)
				continue
			}
			v, _, err := lex.ProcessWord(*kv.Value, f.Global)
			if err != nil {
				return nil, at(a.Location(), err)
			}
			f.Global.Set(kv.Key, v)
		}
	}

	all := make([]*Stage, len(stages))
	byName := map[string]*Stage{}
	for i, st := range stages {
		base, _, err := lex.ProcessWord(st.BaseName, f.Global)
		if err != nil {
			return nil, at(st.Location, err)
		}
		if base == "" {
			return nil, at(st.Location, fmt.Errorf("base name (%s) should not be blank", st.BaseName))
		}
		plat, _, err := lex.ProcessWord(st.Platform, f.Global)
		if err != nil {
			return nil, at(st.Location, err)
		}
		s := &Stage{Index: i, Name: st.Name, Base: base, Platform: plat, Line: line(st.Location), commands: st.Commands, file: f}
		if b, ok := byName[strings.ToLower(base)]; ok {
			s.BaseStage = b
		}
		if s.Name != "" {
			if _, dup := byName[s.Name]; dup {
				return nil, at(st.Location, fmt.Errorf("duplicate stage name %q", s.Name))
			}
			byName[s.Name] = s
		}
		all[i] = s
	}
	var tgt *Stage
	if opts.Target == "" {
		tgt = all[len(all)-1]
	} else if tgt = byName[strings.ToLower(opts.Target)]; tgt == nil {
		names := make([]string, 0, len(byName))
		for n := range byName {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, bad(nil, "target stage %q could not be found (stages: %s)", opts.Target, strings.Join(names, ", "))
	}
	for _, s := range all {
		if err := s.findDeps(all, byName); err != nil {
			return nil, err
		}
	}
	f.Target = tgt
	f.Stages = order(tgt)
	return f, nil
}

// findDeps records the stages s reads besides its base.
func (s *Stage) findDeps(all []*Stage, byName map[string]*Stage) error {
	add := func(d *Stage) {
		for _, x := range s.Deps {
			if x == d {
				return
			}
		}
		s.Deps = append(s.Deps, d)
	}
	if s.BaseStage != nil {
		add(s.BaseStage)
	}
	for _, c := range s.commands {
		var from []string
		switch c := c.(type) {
		case *instructions.CopyCommand:
			if c.From != "" {
				from = append(from, c.From)
			}
		case *instructions.RunCommand:
			for _, m := range instructions.GetMounts(c) {
				if m.From != "" {
					from = append(from, m.From)
				}
			}
		}
		for _, name := range from {
			d, err := lookupStage(name, s, all, byName)
			if err != nil {
				return at(c.Location(), err)
			}
			if d != nil {
				add(d)
			}
		}
	}
	return nil
}

// lookupStage resolves a --from value to a stage, or nil when it names an
// image. A stage can only read stages defined before it.
func lookupStage(name string, s *Stage, all []*Stage, byName map[string]*Stage) (*Stage, error) {
	if strings.Contains(name, "$") {
		return nil, errors.New("variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround")
	}
	if i, err := strconv.Atoi(name); err == nil {
		if i < 0 || i >= len(all) {
			return nil, fmt.Errorf("invalid stage index %d", i)
		}
		if i >= s.Index {
			return nil, fmt.Errorf("stage %d cannot read stage %d, which is not defined before it", s.Index, i)
		}
		return all[i], nil
	}
	d, ok := byName[strings.ToLower(name)]
	if !ok {
		return nil, nil
	}
	if d.Index >= s.Index {
		return nil, fmt.Errorf("stage %q cannot read stage %q, which is not defined before it", s.String(), d.String())
	}
	return d, nil
}

// order returns the stages target needs, dependencies first, in file
// order where the graph allows.
func order(target *Stage) []*Stage {
	seen := map[*Stage]bool{}
	var out []*Stage
	var visit func(s *Stage)
	visit = func(s *Stage) {
		if seen[s] {
			return
		}
		seen[s] = true
		deps := append([]*Stage(nil), s.Deps...)
		sort.Slice(deps, func(i, j int) bool { return deps[i].Index < deps[j].Index })
		for _, d := range deps {
			visit(d)
		}
		out = append(out, s)
	}
	visit(target)
	return out
}

// Stage returns the stage named by a --from value (name or index) when it
// is part of the plan, or nil when the value names an image.
func (f *File) Stage(from string) *Stage {
	for _, s := range f.Stages {
		if (s.Name != "" && strings.EqualFold(s.Name, from)) || strconv.Itoa(s.Index) == from {
			return s
		}
	}
	return nil
}

func line(r []parser.Range) int {
	if len(r) == 0 {
		return 0
	}
	return r[0].Start.Line
}

// at wraps err as a syntax error at location r.
func at(r []parser.Range, err error) error {
	if l := line(r); l > 0 {
		return fmt.Errorf("Dockerfile:%d: %s: %w: %w", l, err.Error(), ErrSyntax, errdefs.ErrInvalidArgument) //nolint:staticcheck // ST1005: "Dockerfile" is a file name
	}
	return fmt.Errorf("Dockerfile: %s: %w: %w", err.Error(), ErrSyntax, errdefs.ErrInvalidArgument)
}

// located turns a BuildKit error (which may carry a location) into ours.
func located(err error) error {
	var le *parser.LocationError
	if errors.As(err, &le) && len(le.Locations) > 0 {
		return at(le.Locations[0], errors.Unwrap(le))
	}
	return at(nil, err)
}

func bad(r []parser.Range, format string, a ...any) error { return at(r, fmt.Errorf(format, a...)) }
