package guest

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// A builder VM (ferry build) runs Dockerfile RUN steps through exec
// requests whose argv re-executes ferry-init itself (BuildHelper, the
// running init's binary) as a helper with BuildHelperArg and an op:
//
//	idle                          the entrypoint: waits for SIGTERM
//	ready                         exits 0: the host's probe that exec works (init has booted)
//	load  DEVICES KIND ID         stdin: a tree stream (treestream.go); KIND "layer" makes OCI whiteouts overlayfs ones
//	run   DEVICES                 stdin: a BuildStep as JSON; exit status: the command's
//	diff  DEVICES ID              stdout: layer ID's changes as a tree stream with OCI whiteouts
//	save  DEVICES ID              stdout: directory ID as a tree stream (a cache mount's content)
//
// DEVICES is "--base=/dev/vda --scratch=/dev/vdb": the read-only base and
// the scratch disk, where the helper keeps layers and directories by ID.
const (
	BuildHelper    = "/proc/1/exe"
	BuildHelperArg = "ferry-build"
)

// Build helper ops and load kinds.
const (
	BuildIdle  = "idle"
	BuildReady = "ready"
	BuildLoad  = "load"
	BuildRun   = "run"
	BuildDiff  = "diff"
	BuildSave  = "save"

	LoadLayer = "layer" // an OCI layer, to be a lower of later steps
	LoadDir   = "dir"   // a plain tree (bind and cache mount sources)
)

// MaxBuildStep bounds a BuildStep document (secrets and heredocs included).
const MaxBuildStep = 16 << 20

// BuildOp is one helper invocation.
type BuildOp struct {
	Op      string
	Base    string // base device
	Scratch string // scratch device
	Kind    string // load
	ID      string // load, diff, save
}

// Argv is the exec argv of op.
func (o BuildOp) Argv() []string {
	a := []string{BuildHelper, BuildHelperArg, o.Op}
	if o.Op == BuildIdle || o.Op == BuildReady {
		return a
	}
	a = append(a, "--base="+o.Base, "--scratch="+o.Scratch)
	if o.Op == BuildLoad {
		a = append(a, o.Kind)
	}
	if o.ID != "" {
		a = append(a, o.ID)
	}
	return a
}

// ParseBuildOp reads the arguments after BuildHelperArg.
func ParseBuildOp(args []string) (BuildOp, error) {
	if len(args) == 0 {
		return BuildOp{}, errors.New("ferry-build: no op")
	}
	o := BuildOp{Op: args[0]}
	rest := args[1:]
	for len(rest) > 0 && strings.HasPrefix(rest[0], "--") {
		k, v, _ := strings.Cut(strings.TrimPrefix(rest[0], "--"), "=")
		switch k {
		case "base":
			o.Base = v
		case "scratch":
			o.Scratch = v
		default:
			return o, fmt.Errorf("ferry-build: unknown flag --%s", k)
		}
		rest = rest[1:]
	}
	want := 0
	switch o.Op {
	case BuildIdle, BuildReady, BuildRun:
	case BuildLoad:
		want = 2
	case BuildDiff, BuildSave:
		want = 1
	default:
		return o, fmt.Errorf("ferry-build: unknown op %q", o.Op)
	}
	if len(rest) != want {
		return o, fmt.Errorf("ferry-build %s: want %d arguments, got %d", o.Op, want, len(rest))
	}
	if o.Op == BuildLoad {
		o.Kind, rest = rest[0], rest[1:]
		if o.Kind != LoadLayer && o.Kind != LoadDir {
			return o, fmt.Errorf("ferry-build load: kind %q: want layer or dir", o.Kind)
		}
	}
	if len(rest) == 1 {
		o.ID = rest[0]
		if !ValidBuildID(o.ID) {
			return o, fmt.Errorf("ferry-build %s: bad id %q", o.Op, o.ID)
		}
	}
	if o.Op != BuildIdle && o.Op != BuildReady && (o.Scratch == "" || o.Base == "") {
		return o, fmt.Errorf("ferry-build %s: --base and --scratch are required", o.Op)
	}
	return o, nil
}

// ValidBuildID reports whether id can name a layer or directory: short,
// letters, digits, '-' and '_' (it becomes a path component and a part of
// overlayfs mount options).
func ValidBuildID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// BuildStep is one RUN: the layers it sees, the layer it writes, and the
// process with its mounts.
type BuildStep struct {
	// Upper is the ID of the layer the step writes (created empty).
	Upper string `json:"upper"`
	// Lowers are the layers below it, the topmost first; the base disk is
	// always the bottom.
	Lowers  []string `json:"lowers,omitempty"`
	Argv    []string `json:"argv"`
	Env     []string `json:"env,omitempty"`
	User    string   `json:"user,omitempty"`
	Workdir string   `json:"workdir,omitempty"`
	// Network false runs the step in an empty network namespace (lo only).
	Network  bool         `json:"network,omitempty"`
	Hostname string       `json:"hostname,omitempty"`
	Mounts   []BuildMount `json:"mounts,omitempty"`
	// Files are heredoc scripts, mounted read-only at /dev/pipes/<name>.
	Files []BuildFile `json:"files,omitempty"`
}

// BuildMount is a RUN --mount.
type BuildMount struct {
	Type     string `json:"type"` // bind, cache, tmpfs, secret
	Target   string `json:"target,omitempty"`
	Source   string `json:"source,omitempty"` // bind, cache: a directory ID loaded or kept before
	SubPath  string `json:"sub_path,omitempty"`
	ReadOnly bool   `json:"readonly,omitempty"`
	Data     []byte `json:"data,omitempty"` // secret
	Env      string `json:"env,omitempty"`  // secret: also set this variable to it
	Mode     uint32 `json:"mode,omitempty"`
	UID      int    `json:"uid,omitempty"`
	GID      int    `json:"gid,omitempty"`
	Size     int64  `json:"size,omitempty"` // tmpfs
}

// BuildFile is an inline file.
type BuildFile struct {
	Name string `json:"name"`
	Data string `json:"data"`
}

// Validate checks s's shape.
func (s *BuildStep) Validate() error {
	if !ValidBuildID(s.Upper) {
		return fmt.Errorf("build step: bad upper id %q", s.Upper)
	}
	for _, l := range s.Lowers {
		if !ValidBuildID(l) || l == s.Upper {
			return fmt.Errorf("build step: bad lower id %q", l)
		}
	}
	if len(s.Argv) == 0 {
		return errors.New("build step: empty argv")
	}
	if s.Workdir != "" && !path.IsAbs(s.Workdir) {
		return fmt.Errorf("build step: workdir %q is not absolute", s.Workdir)
	}
	for _, m := range s.Mounts {
		switch m.Type {
		case "bind", "cache":
			if !ValidBuildID(m.Source) {
				return fmt.Errorf("build step: %s mount source %q", m.Type, m.Source)
			}
		case "tmpfs", "secret":
		default:
			return fmt.Errorf("build step: mount type %q", m.Type)
		}
		if m.Target == "" && !(m.Type == "secret" && m.Env != "") {
			return fmt.Errorf("build step: %s mount without a target", m.Type)
		}
		if m.Target != "" && (!path.IsAbs(m.Target) || path.Clean(m.Target) == "/") {
			return fmt.Errorf("build step: mount target %q must be absolute and not /", m.Target)
		}
		if strings.Contains(m.SubPath, "..") {
			return fmt.Errorf("build step: mount sub path %q", m.SubPath)
		}
	}
	for _, f := range s.Files {
		if f.Name == "" || strings.ContainsAny(f.Name, "/\x00") || f.Name == "." || f.Name == ".." {
			return fmt.Errorf("build step: inline file name %q", f.Name)
		}
	}
	return nil
}
